// inspect-data: shows what the data pipeline makes of a config's records, before any GPU time.
#include <iostream>

#include "cli/commands.hpp"
#include "cli/job_options.hpp"
#include "percetrain/config/job_config.hpp"
#include "percetrain/data/inspect.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain::cli {
namespace {

Runner add_inspect_data_command(CLI::App& app) {
  struct Options {
    std::string config, data, golds;
    std::vector<std::string> overrides;
    int64_t limit = 3;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "inspect-data",
      "Print, for the first records of a data file, both prompts (with and without the profile) with "
      "their token counts, the response tokens and the retrieved profile items with their scores; then "
      "counts of records, tokens, truncations and skips over the whole file.\n"
      "Example: percetrain inspect-data --config configs/demo.json --limit 2");
  add_job_options(cmd, opts->config, opts->overrides, "its data and tokenizer sections are used");
  cmd->add_option("--data", opts->data, "Records to read (default: data.train_file)");
  cmd->add_option("--golds", opts->golds, "LaMP golds file for --data (default: the one paired with the file)");
  cmd->add_option("--limit", opts->limit, "Records to print in full (0: only the counts)")
      ->capture_default_str()
      ->check(at_least(0));
  return [opts]() {
    const JobConfig job = load_job_config(opts->config, opts->overrides);
    const DataConfig& c = job.data;
    std::string file = opts->data, golds = opts->golds;
    if (file.empty()) {
      file = c.train_file;
      if (golds.empty()) golds = c.train_golds_file;
    } else if (golds.empty()) {
      if (file == c.valid_file) golds = c.valid_golds_file;
      else if (file == c.test_file) golds = c.test_golds_file;
      else if (file == c.train_file) golds = c.train_golds_file;
    }
    if (file.empty()) fail("--data", "no data file", "give --data or set data.train_file in the config");
    inspect_data(c, *load_tokenizer(tokenizer_path(job)), file, golds, opts->limit, std::cout);
    return 0;
  };
}

const CommandRegistration inspect_data_registration(add_inspect_data_command);

}  // namespace
}  // namespace percetrain::cli
