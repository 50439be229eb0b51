// `percetrain train`: fine-tune a model with PerCE (or a baseline) from a JSON job config.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/job_options.hpp"
#include "percetrain/config/job_config.hpp"
#include "percetrain/train/run_dir.hpp"
#include "percetrain/train/trainer.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/interrupt.hpp"

namespace percetrain::cli {
namespace {

namespace fs = std::filesystem;

// A path as short as it can be shown and still be pasted here: relative to the current folder
// when it lies below it, else absolute.
std::string shown(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  const fs::path relative = fs::path(path).lexically_relative(fs::current_path(ec));
  if (relative.empty() || *relative.begin() == "..") return path;
  return relative.string();
}

// Quoted for a POSIX shell when it has to be.
std::string shell_word(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:@+,%") ==
                           std::string::npos)
    return word;
  std::string out = "'";
  for (const char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// This binary as the user can call it from here (build/percetrain after the demo).
std::string this_binary() {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("percetrain") : shown(exe.string());
}

// What the run is, in a few lines: the whole effective config goes to output.dir/job_config.json
// (and to stderr with --verbose).
std::string config_summary(const JobConfig& c) {
  std::ostringstream s;
  s << "config:    " << c.file << "\n";
  s << "model:     " << shown(c.model.path)
    << (c.model.init_arch.empty() ? "" : " (a random " + c.model.init_arch + "/" + c.model.init_preset +
                                             " model is created there when missing)")
    << (c.lora.rank > 0 ? ", LoRA rank " + std::to_string(c.lora.rank) : "") << ", device " << c.model.device
    << ", dtype " << c.model.dtype << "\n";
  s << "objective: " << enum_name(c.objective.name);
  if (c.objective.name == ObjectiveKind::kPerce) s << " (clip " << c.objective.clip_min << " .. " << c.objective.clip_max << ")";
  s << "\n";
  s << "train:     lr " << c.train.lr << " (" << enum_name(c.train.schedule) << "), batch " << c.train.batch_size
    << " in micro-batches of " << c.train.micro_batch_size << ", "
    << (c.train.max_steps > 0 ? std::to_string(c.train.max_steps) + " steps" : std::to_string(c.train.epochs) + " epochs")
    << ", seed " << c.train.seed << "\n";
  s << "data:      " << shown(c.data.train_file)
    << (c.data.valid_file.empty() ? "" : " (validation " + shown(c.data.valid_file) + ")") << "\n";
  s << "output:    " << shown(c.output.dir) << " (every key: " << shown((fs::path(c.output.dir) / "job_config.json").string())
    << "; --verbose prints them here)\n";
  return s.str();
}

// The commands that look at what the run made, each as it can be pasted here: score the trained
// model with the HTML report, generate and evaluate, the run's report.
// The run's --set overrides are repeated (bar model.path where final/ replaces it, and output.dir).
std::string next_commands(const std::string& config_arg, const std::vector<std::string>& overrides, const JobConfig& c,
                          const std::string& model_dir) {
  const bool adapter = c.lora.per_user || c.lora.rank > 0;
  std::string config = shell_word(config_arg);
  for (const auto& o : overrides)
    if (o.rfind("output.dir=", 0) != 0 && (adapter || o.rfind("model.path=", 0) != 0)) config += " --set " + shell_word(o);
  const std::string bin = this_binary(), run = shown(c.output.dir);
  // final/ is the fine-tuned model, or with LoRA the adapter on the config's model.
  std::string model = " --set model.path=" + shell_word(shown(model_dir));
  if (c.lora.per_user) model = " --adapters " + shell_word((fs::path(run) / "adapters").string());
  else if (c.lora.rank > 0) model = " --adapter " + shell_word(shown(model_dir));
  std::string out = "next:\n";
  const std::string data = c.data.test_file.empty() ? c.data.valid_file : c.data.test_file;
  const std::string golds = c.data.test_file.empty() ? c.data.valid_golds_file : c.data.test_golds_file;
  if (!data.empty()) {
    const std::string data_args =
        " --data " + shell_word(shown(data)) + (golds.empty() ? "" : " --golds " + shell_word(shown(golds)));
    const fs::path r(run);
    out += "  " + bin + " score --config " + config + model + data_args + " --out " +
           shell_word((r / "scores.jsonl").string()) + " --html " + shell_word((r / "scores.html").string()) + "\n";
    out += "  " + bin + " generate --config " + config + model + data_args + " --out " +
           shell_word((r / "predictions.jsonl").string()) + "\n";
    out += "  " + bin + " eval --predictions " + shell_word((r / "predictions.jsonl").string()) + " --references " +
           shell_word(shown(golds.empty() ? data : golds)) + " --out " + shell_word((r / "eval.json").string()) + "\n";
  }
  out += "  " + bin + " report " + shell_word(run) + "\n";
  return out;
}

std::string objective_names() {
  std::string names;
  for (const auto& name : enum_names<ObjectiveKind>()) names += (names.empty() ? "" : ", ") + name;
  return names;
}

Runner add_train_command(CLI::App& app) {
  struct Options {
    std::string config, adapter;
    std::vector<std::string> overrides;
    bool resume = false, overwrite = false, quiet = false, verbose = false;
    int64_t stop_after = 0;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "train",
      "Fine-tune a Hugging Face causal LM with PerCE (token weights = clip(PIR, m, M), PIR = the personal "
      "influence ratio log P(token | profile, query) - log P(token | query), from a second, profile-free pass) or "
      "another objective.name: " +
          objective_names() +
          ".\n"
          "Writes checkpoints, metrics.jsonl, job_config.json (the effective config) and the final model (Hugging "
          "Face layout) to output.dir, and prints the commands that score, generate with and report on it.\n"
          "Precision: model.dtype auto is float32 on the CPU and bfloat16 on CUDA, where the optimizer keeps fp32 "
          "master weights (train.master_weights; 18 bytes per parameter, README \"Precision\"). The device is "
          "model.device (cpu, cuda, cuda:N, auto), e.g. --set model.device=cpu.\n"
          "LoRA: a \"lora\" section with a rank trains adapters on the frozen model (checkpoints and final/ hold the "
          "adapter in PEFT's layout); lora.per_user trains one per user into output.dir/adapters/<user>/.\n"
          "Example: percetrain train --config configs/demo.json --set train.lr=1e-3 --set output.dir=runs/lr1e-3");
  add_job_options(cmd, opts->config, opts->overrides, "model, tokenizer, data, objective, train, output");
  auto* resume = cmd->add_flag("--resume", opts->resume,
                "Continue the run in output.dir from its newest intact checkpoint, exactly (the config must match "
                "the one it was written with)");
  cmd->add_flag("--overwrite", opts->overwrite,
                "Start over in an output.dir that holds an earlier run: removes only the files that run wrote")
      ->excludes(resume);
  cmd->add_option("--adapter", opts->adapter,
                  "Continue training this PEFT LoRA adapter folder on the frozen model.path (sets lora.init_adapter; "
                  "its adapter_config.json gives rank, alpha, dropout and targets)");
  cmd->add_option("--stop-after", opts->stop_after, "Save a checkpoint and stop after this many optimizer steps (>= 1)")
      ->check(at_least(1));
  auto* quiet = cmd->add_flag("--quiet", opts->quiet, "No progress output (metrics.jsonl is still written)");
  cmd->add_flag("--verbose", opts->verbose,
                "Print the whole effective config before the first step (it is always written to "
                "output.dir/job_config.json)")
      ->excludes(quiet);
  return [opts]() {
    // --adapter is lora.init_adapter given on the command line: applied with the --set values, before
    // the config's cross-key rules, so that they see it (lora.per_user refuses it, for one).
    std::vector<std::string> overrides = opts->overrides;
    if (!opts->adapter.empty()) overrides.push_back("lora.init_adapter=" + nlohmann::json(opts->adapter).dump());
    JobConfig config = load_job_config(opts->config, overrides);
    // Before any work: output.dir may be neither an input nor inside a folder the job reads, and may
    // not hold an input under a name the run writes (final/ as model.path, a data file named
    // metrics.jsonl), which --overwrite or publishing would replace.
    refuse_outputs_onto_inputs({{config.output.dir, "output.dir (" + config.file + ")", true, run_folder_writes, false}},
                               job_config_inputs(config));
    // Under torchrun every rank runs this; rank 0 speaks for all.
    const char* rank = std::getenv("RANK");
    const bool root = rank == nullptr || std::string(rank) == "0";
    if (!opts->quiet && root)
      std::cerr << (opts->verbose ? "effective config:\n" + job_config_to_json(config) : config_summary(config));
    install_interrupt_handlers();
    TrainOptions options;
    options.resume = opts->resume;
    options.overwrite = opts->overwrite;
    options.stop_after_steps = opts->stop_after;
    options.progress = !opts->quiet;
    auto summary = run_training(config, options);
    if (root) {
      std::cout << (summary.final_model_dir.empty() ? summary.last_checkpoint : summary.final_model_dir) << "\n";
      if (!opts->quiet && !summary.final_model_dir.empty())
        std::cerr << next_commands(opts->config, opts->overrides, config, summary.final_model_dir);
    }
    return 0;
  };
}

const CommandRegistration train_registration(add_train_command);

}  // namespace
}  // namespace percetrain::cli
