// `percetrain score`: per-token PIR and PerCE weights of a dataset as JSONL, a summary and an HTML report.
#include <iostream>

#include "cli/commands.hpp"
#include "cli/job_options.hpp"
#include "percetrain/config/job_config.hpp"
#include "percetrain/score/offline_weights.hpp"
#include "percetrain/score/scorer.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/interrupt.hpp"

namespace percetrain::cli {
namespace {

Runner add_score_command(CLI::App& app) {
  struct Options {
    std::string config, data, golds, out, html, weights_out, adapter, adapters;
    std::vector<std::string> overrides;
    int64_t html_records = 50, limit = 0, batch_size = 0;
    bool resume = false, quiet = false;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "score",
      "Score every response token of a dataset with the config's model through the training pipeline "
      "(retrieval, paired prompts): log P with and without the profile, PIR and the PerCE weight "
      "clip(PIR, objective.clip_min, objective.clip_max). Writes one JSONL line per record, "
      "OUT.summary.json, and optionally a self-contained HTML report.\n"
      "Example (the demo's trained model, after bash scripts/demo.sh): percetrain score --config configs/demo.json "
      "--set model.path=build/demo/run/final --out scores.jsonl --html report.html\n"
      "(Without --set model.path this scores the config's model.path, for the demo the untrained random model.)\n"
      "Several ranks (docs/distributed.md): torchrun --nproc_per_node N --no_python percetrain score ...: each rank "
      "scores a stretch of the records into OUT.rank-R-of-N, rank 0 merges them into OUT (the bytes one rank writes).");
  add_job_options(cmd, opts->config, opts->overrides, "model, tokenizer, data, objective");
  cmd->add_option("--data", opts->data, "Records to score (default: data.test_file)");
  cmd->add_option("--golds", opts->golds,
                  "LaMP golds file for --data (default: data.test_golds_file when --data is not given)");
  cmd->add_option("--out", opts->out, "JSONL output (written as OUT.tmp, renamed when complete)")->required();
  cmd->add_option("--html", opts->html, "Also write a self-contained HTML report here");
  cmd->add_option("--html-records", opts->html_records, "Records shown in the HTML report (the first N; 0: none)")
      ->capture_default_str()
      ->check(at_least(0));
  cmd->add_flag("--resume", opts->resume, "Keep the complete lines of OUT.tmp from an interrupted run and continue");
  cmd->add_option("--limit", opts->limit, "Score only the first N records, N >= 1 (data.max_records; default all)")
      ->check(at_least(1));
  cmd->add_option("--batch-size", opts->batch_size, "Examples per forward pass (default: 2 x train.micro_batch_size)")
      ->check(at_least(1));
  cmd->add_option("--weights-out", opts->weights_out,
                  "Also write the scored records (JSONL, every field kept) with token_weights set to their PerCE "
                  "weights: fixed offline weights for objective weights_from_data");
  auto* adapter =
      cmd->add_option("--adapter", opts->adapter, "PEFT LoRA adapter folder to apply (unmerged) on model.path");
  cmd->add_option("--adapters", opts->adapters,
                  "Folder of per-user adapters (<user>/, as train with lora.per_user writes to output.dir/adapters): "
                  "each record is scored with its user's (data.user_key), records of users without one on the base")
      ->excludes(adapter);
  cmd->add_flag("--quiet", opts->quiet, "No progress output");
  return [opts]() {
    JobConfig config = load_job_config(opts->config, opts->overrides);
    opts->adapter = model_location(opts->adapter, "--adapter");
    install_interrupt_handlers();
    if (opts->limit > 0) config.data.max_records = opts->limit;
    std::string data = opts->data, golds = opts->golds;
    if (data.empty()) {
      data = config.data.test_file;
      if (golds.empty()) golds = config.data.test_golds_file;
      if (data.empty())
        fail(config.file + ": data.test_file", "is not set and no --data was given", "pass --data FILE");
    }
    // Before any work: no output (side files included) may land on what the job reads.
    auto inputs = job_config_inputs(config);
    inputs.push_back({data, "--data"});
    inputs.push_back({golds, "--golds"});
    inputs.push_back({opts->adapter, "--adapter", true});
    inputs.push_back({opts->adapters, "--adapters", true});
    refuse_outputs_onto_inputs({{opts->out, "--out"},
                                {opts->out + ".tmp", "OUT.tmp (from --out)"},
                                {summary_path_for(opts->out), "OUT.summary.json (from --out)"},
                                {opts->html, "--html"},
                                {opts->weights_out, "--weights-out"}},
                               inputs);
    ScoreOptions options;
    options.out = opts->out;
    options.html = opts->html;
    options.html_records = opts->html_records;
    options.resume = opts->resume;
    options.micro_batch_size = opts->batch_size;
    options.progress = !opts->quiet;
    options.adapter = opts->adapter;
    options.adapters = opts->adapters;
    auto result = run_scoring(config, data, golds, options);
    if (result.rank != 0) return 0;  // rank 0 merged the parts and says what was written
    std::cout << result.out << "\n";
    if (!opts->weights_out.empty() && result.finished) {
      const auto weighted = write_weighted_records(data, result.out, opts->weights_out);
      std::cout << opts->weights_out << ": " << weighted.weighted << " of " << weighted.records
                << " records with token_weights\n";
    }
    return 0;
  };
}

const CommandRegistration score_registration(add_score_command);

}  // namespace
}  // namespace percetrain::cli
