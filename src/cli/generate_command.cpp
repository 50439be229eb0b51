// `percetrain generate`: options only; the jobs are run_generation / run_decode_benchmark.
#include "cli/commands.hpp"
#include "cli/job_options.hpp"
#include "percetrain/config/job_config.hpp"
#include "percetrain/generate/generate_job.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/interrupt.hpp"

namespace percetrain::cli {
namespace {

struct Options {
  std::string config;
  std::vector<std::string> sets;
  GenerateJobOptions job;
  bool benchmark = false;
  DecodeBenchmarkOptions bench;
};

Runner add_generate_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "generate",
      "Decode a response for every record of --data with the prompt built as in training (with the "
      "profile; --no-profile for the counterfactual) and write one JSON line per record "
      "{id, prediction, generated_tokens, stop_reason} to --out (streamed to OUT.tmp, renamed when "
      "complete). Decoding settings come from the config's \"generate\" section.\n"
      "Example: percetrain generate --config job.json --data test.jsonl --out predictions.jsonl\n"
      "Speed: percetrain generate --benchmark --model DIR [--prompt-tokens 64 --new-tokens 16]");
  auto* config =
      cmd->add_option("--config", o->config, "Job config (JSON): model, tokenizer, data, generate")->check(existing_config_file());
  auto* data = cmd->add_option("--data", o->job.data, "Records to decode (JSON array or JSONL, as the data section reads)");
  auto* golds = cmd->add_option("--golds", o->job.golds, "LaMP-style {\"golds\": [...]} file with the outputs, when separate");
  auto* out = cmd->add_option("--out", o->job.out, "Predictions file (JSONL)");
  auto* sets = cmd->add_option("--set", o->sets, "Override a config value, e.g. --set generate.temperature=0 (repeatable; a path given here "
                                "resolves against the current folder)")
                   ->check(config_assignment());
  auto* no_profile =
      cmd->add_flag("--no-profile", o->job.no_profile, "Decode from the prompts without the profile (counterfactual)");
  auto* resume =
      cmd->add_flag("--resume", o->job.resume, "Continue an interrupted run from OUT.tmp, skipping the ids it holds");
  auto* limit = cmd->add_option("--limit", o->job.limit, "Decode only the first N records of --data, N >= 1 (default all)")
                    ->check(at_least(1));
  auto* adapter =
      cmd->add_option("--adapter", o->job.adapter, "PEFT LoRA adapter folder to apply (unmerged) on model.path");
  auto* adapters =
      cmd->add_option("--adapters", o->job.adapters,
                      "Folder of per-user adapters (<user>/, as train with lora.per_user writes to output.dir/adapters): "
                      "each record decodes with its user's (data.user_key), records of users without one on the base")
          ->excludes(adapter);
  auto* no_cache =
      cmd->add_flag("--no-cache", o->job.no_cache, "Recompute the whole prefix at every step (slow; for checks)");
  auto* benchmark = cmd->add_flag("--benchmark", o->benchmark,
                                  "Measure decode tokens/s with and without the KV cache on random prompts, then exit");
  auto* model = cmd->add_option("--model", o->bench.model, "--benchmark: Hugging Face model folder");
  auto* random_config = cmd->add_option("--random-config", o->bench.random_config,
                                        "--benchmark: a config.json; the model gets random weights (nothing is written)")
                            ->excludes(model);
  const std::vector<CLI::Option*> bench_only = {
      model,
      random_config,
      cmd->add_option("--device", o->bench.device, "--benchmark: cpu, cuda, cuda:N or auto")
          ->capture_default_str()
          ->check(device_spec()),
      cmd->add_option("--dtype", o->bench.dtype, "--benchmark: float32, bfloat16, float16 or auto")
          ->capture_default_str()
          ->check(dtype_spec()),
      cmd->add_option("--prompt-tokens", o->bench.prompt_tokens, "--benchmark: prompt length")
          ->capture_default_str()
          ->check(at_least(1)),
      cmd->add_option("--new-tokens", o->bench.new_tokens, "--benchmark: tokens to generate per prompt")
          ->capture_default_str()
          ->check(at_least(2)),
      cmd->add_option("--batch-size", o->bench.batch_size, "--benchmark: prompts decoded together")
          ->capture_default_str()
          ->check(at_least(1)),
      cmd->add_option("--seed", o->bench.seed, "--benchmark: seed of the prompts and random weights")
          ->capture_default_str()
          ->check(at_least(0))};
  // A decoding job and --benchmark take disjoint options: one given with the other would be
  // silently ignored, so the parser refuses it; and a job needs its three inputs.
  for (auto* option : bench_only) option->needs(benchmark);
  for (auto* option : {config, data, golds, out, sets, no_profile, resume, limit, adapter, adapters, no_cache})
    benchmark->excludes(option);
  cmd->footer(kPathRule);
  cmd->parse_complete_callback([o, config, data, out, model, random_config]() {
    if (o->benchmark) {
      if (model->count() == 0 && random_config->count() == 0)
        throw CLI::RequiredError("--benchmark needs --model or --random-config", CLI::ExitCodes::RequiredError);
      return;
    }
    for (auto* option : {config, data, out})
      if (option->count() == 0)
        throw CLI::RequiredError(option->get_name() + " is required (or use --benchmark)", CLI::ExitCodes::RequiredError);
  });
  return [o]() {
    if (o->benchmark) {
      o->bench.model = model_location(o->bench.model, "--model");
      run_decode_benchmark(o->bench);
      return 0;
    }
    const JobConfig config = load_job_config(o->config, o->sets);
    o->job.adapter = model_location(o->job.adapter, "--adapter");
    // Before any work: the predictions (and OUT.tmp) may not land on what the job reads.
    auto inputs = job_config_inputs(config);
    inputs.push_back({o->job.data, "--data"});
    inputs.push_back({o->job.golds, "--golds"});
    inputs.push_back({o->job.adapter, "--adapter", true});
    inputs.push_back({o->job.adapters, "--adapters", true});
    refuse_outputs_onto_inputs({{o->job.out, "--out"}, {o->job.out + ".tmp", "OUT.tmp (from --out)"}}, inputs);
    install_interrupt_handlers();
    run_generation(config, o->job);
    return 0;
  };
}

const CommandRegistration generate_registration(add_generate_command);

}  // namespace
}  // namespace percetrain::cli
