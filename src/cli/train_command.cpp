// `percetrain train`: fine-tune a model with PerCE (or a baseline) from a JSON job config.
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/job_options.hpp"
#include "percetrain/config/job_config.hpp"
#include "percetrain/train/run_dir.hpp"
#include "percetrain/train/trainer.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/interrupt.hpp"

namespace percetrain::cli {
namespace {

Runner add_train_command(CLI::App& app) {
  struct Options {
    std::string config, adapter;
    std::vector<std::string> overrides;
    bool resume = false, overwrite = false, quiet = false;
    int64_t stop_after = 0;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "train",
      "Fine-tune a Hugging Face causal LM with PerCE (token weights = clip(PIR, m, M) from a second, "
      "profile-free pass) or a baseline objective (ce, lossce, entce), as the job config says.\n"
      "Writes checkpoints, metrics.jsonl and the final model (Hugging Face layout) to output.dir.\n"
      "Precision: model.dtype auto is float32 on the CPU and bfloat16 on CUDA, where the optimizer keeps fp32 "
      "master weights (train.master_weights; 18 bytes per parameter, README \"Precision\").\n"
      "LoRA: a \"lora\" section with a rank trains adapters on the frozen model (checkpoints and final/ hold the "
      "adapter in PEFT's layout); lora.per_user trains one per user into output.dir/adapters/<user>/.\n"
      "Example: percetrain train --config configs/demo.json --set train.lr=1e-3");
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
  cmd->add_flag("--quiet", opts->quiet, "No progress output (metrics.jsonl is still written)");
  return [opts]() {
    JobConfig config = load_job_config(opts->config, opts->overrides);
    if (!opts->adapter.empty()) config.lora.init_adapter = std::filesystem::absolute(opts->adapter).string();
    // Before any work: output.dir may be neither an input nor inside a folder the job reads, and may
    // not hold an input under a name the run writes (final/ as model.path, a data file named
    // metrics.jsonl), which --overwrite or publishing would replace.
    refuse_outputs_onto_inputs({{config.output.dir, "output.dir (" + config.file + ")", true, run_folder_writes, false}},
                               job_config_inputs(config));
    // Under torchrun every rank runs this; rank 0 speaks for all.
    const char* rank = std::getenv("RANK");
    const bool root = rank == nullptr || std::string(rank) == "0";
    if (!opts->quiet && root) std::cerr << "effective config:\n" << job_config_to_json(config);
    install_interrupt_handlers();
    TrainOptions options;
    options.resume = opts->resume;
    options.overwrite = opts->overwrite;
    options.stop_after_steps = opts->stop_after;
    options.progress = !opts->quiet;
    auto summary = run_training(config, options);
    if (root) std::cout << (summary.final_model_dir.empty() ? summary.last_checkpoint : summary.final_model_dir) << "\n";
    return 0;
  };
}

const CommandRegistration train_registration(add_train_command);

}  // namespace
}  // namespace percetrain::cli
