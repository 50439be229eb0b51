// report: a training run's curves (metrics.jsonl) and config as one self-contained HTML page.
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "percetrain/report/run_report.hpp"
#include "percetrain/util/file.hpp"

namespace percetrain::cli {
namespace {

Runner add_report_command(CLI::App& app) {
  struct Options {
    std::string run_dir, out;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "report",
      "Write one self-contained HTML page (inline SVG, no scripts) with a training run's curves from "
      "RUN_DIR/metrics.jsonl (loss, ce, PIR, clipping, lr, grad norm, every valid_* series and any other "
      "numeric key) and its config from RUN_DIR/job_config.json.\n"
      "Example: percetrain report build/demo/run --out run.html");
  cmd->add_option("run_dir", opts->run_dir, "The run's output folder (output.dir of the job config)")->required();
  cmd->add_option("--out", opts->out, "Where to write the page (default RUN_DIR/report.html); an existing page is replaced, no --overwrite needed");
  return [opts]() {
    const std::string out =
        opts->out.empty() ? (std::filesystem::path(opts->run_dir) / "report.html").string() : opts->out;
    // The run's own files are inputs of the page (or another job's): the page goes beside them.
    std::vector<JobInput> inputs;
    std::error_code ec;
    for (const char* name : {"metrics.jsonl", "job_config.json", "percetrain-run.json", "users.json", ".percetrain.lock"})
      inputs.push_back({(std::filesystem::path(opts->run_dir) / name).string(), std::string("the run's ") + name});
    if (std::filesystem::is_directory(opts->run_dir, ec))
      for (const auto& entry : std::filesystem::directory_iterator(opts->run_dir, ec))
        if (entry.is_directory()) inputs.push_back({entry.path().string(), "the run's folder", true});
    refuse_outputs_onto_inputs({{out, "--out"}}, inputs);
    std::cout << write_run_report(opts->run_dir, out) << "\n";
    return 0;
  };
}

const CommandRegistration report_registration(add_report_command);

}  // namespace
}  // namespace percetrain::cli
