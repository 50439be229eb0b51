// `percetrain generate`: options only; the jobs are run_generation / run_decode_benchmark.
#include "cli/commands.hpp"
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
  cmd->add_option("--config", o->config, "Job config (JSON): model, tokenizer, data, generate")->check(CLI::ExistingFile);
  cmd->add_option("--data", o->job.data, "Records to decode (JSON array or JSONL, as the data section reads)");
  cmd->add_option("--golds", o->job.golds, "LaMP-style {\"golds\": [...]} file with the outputs, when separate");
  cmd->add_option("--out", o->job.out, "Predictions file (JSONL)");
  cmd->add_option("--set", o->sets, "Override a config value, e.g. --set generate.temperature=0 (repeatable)");
  cmd->add_flag("--no-profile", o->job.no_profile, "Decode from the prompts without the profile (counterfactual)");
  cmd->add_flag("--resume", o->job.resume, "Continue an interrupted run from OUT.tmp, skipping the ids it holds");
  cmd->add_option("--limit", o->job.limit, "Decode only the first N records of --data");
  cmd->add_option("--adapter", o->job.adapter, "PEFT LoRA adapter folder to apply (unmerged) on model.path");
  cmd->add_option("--adapters", o->job.adapters,
                  "Folder of per-user adapters (<user>/, as train with lora.per_user writes to output.dir/adapters): "
                  "each record decodes with its user's (data.user_key), records of users without one on the base");
  cmd->add_flag("--no-cache", o->job.no_cache, "Recompute the whole prefix at every step (slow; for checks)");
  cmd->add_flag("--benchmark", o->benchmark,
                "Measure decode tokens/s with and without the KV cache on random prompts, then exit");
  cmd->add_option("--model", o->bench.model, "--benchmark: Hugging Face model folder");
  cmd->add_option("--random-config", o->bench.random_config,
                  "--benchmark: a config.json; the model gets random weights (nothing is written)");
  cmd->add_option("--device", o->bench.device, "--benchmark: cpu, cuda, cuda:N or auto")->capture_default_str();
  cmd->add_option("--dtype", o->bench.dtype, "--benchmark: float32, bfloat16, float16 or auto")->capture_default_str();
  cmd->add_option("--prompt-tokens", o->bench.prompt_tokens, "--benchmark: prompt length")->capture_default_str();
  cmd->add_option("--new-tokens", o->bench.new_tokens, "--benchmark: tokens to generate per prompt")->capture_default_str();
  cmd->add_option("--batch-size", o->bench.batch_size, "--benchmark: prompts decoded together")->capture_default_str();
  cmd->add_option("--seed", o->bench.seed, "--benchmark: seed of the prompts and random weights")->capture_default_str();
  return [o]() {
    if (o->benchmark) {
      run_decode_benchmark(o->bench);
      return 0;
    }
    if (o->config.empty() || o->job.data.empty() || o->job.out.empty())
      fail("generate", "--config, --data and --out are required", "or use --benchmark");
    const JobConfig config = load_job_config(o->config, o->sets);
    install_interrupt_handlers();
    run_generation(config, o->job);
    return 0;
  };
}

const CommandRegistration generate_registration(add_generate_command);

}  // namespace
}  // namespace percetrain::cli
