// The options every job command shares (--config FILE and repeatable --set section.key=value),
// and the parser's checks of option values, so that a mistake is one line and exit status 2
// before anything is printed or loaded.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"
#include "percetrain/util/hf_cache.hpp"

namespace percetrain::cli {

// A whole number of at least `min`, in decimal. The value is rewritten to plain decimal, so that
// CLI11 neither reads 010 as octal nor wraps -1 into an unsigned option.
CLI::Validator at_least(int64_t min);
// --device: cpu, cuda, cuda:N or auto (whether that device exists is checked where it is used).
CLI::Validator device_spec();
// --dtype: float32, bfloat16, float16 (or fp32, bf16, fp16) or auto.
CLI::Validator dtype_spec();
// --set: section.key=value with a key the job config has (the value is checked with the config);
// a Hugging Face TrainingArguments name is refused with percetrain's name for it.
CLI::Validator config_assignment();
// --config: a file that exists; the error names its absolute path.
CLI::Validator existing_config_file();

// A model, adapter or tokenizer folder given as an option (--model, --adapter): the path as given
// when it exists, else a Hugging Face repository id's snapshot folder in the local cache.
inline std::string model_location(const std::string& value, const std::string& option) {
  return resolve_model_location(value, value, option);
}

// The rule for relative paths, as every job command's --help states it.
inline constexpr const char* kPathRule =
    "Relative paths: those written in the config file resolve against the config's folder; --set values and "
    "options such as --data, --out, --model resolve against the current folder. model.path, --model, --adapter, "
    "objective.reference_model and tokenizer.path may also name a Hugging Face repository id (Qwen/Qwen3-4B, "
    "Qwen/Qwen3-4B@REVISION) downloaded into the local Hugging Face cache (huggingface-cli download ID); "
    "a local path that exists wins, and nothing is downloaded.";

// `what` completes the --config help: "Job config (JSON): <what>".
inline void add_job_options(CLI::App* cmd, std::string& config, std::vector<std::string>& overrides,
                            const std::string& what) {
  cmd->add_option("--config", config, "Job config (JSON): " + what)->required()->check(existing_config_file());
  cmd->add_option("--set", overrides,
                  "Override a config key, e.g. --set train.lr=2e-5 (repeatable; a path given here resolves against "
                  "the current folder, one written in the config file against the config's folder)")
      ->check(config_assignment());
  cmd->footer(kPathRule);
}

}  // namespace percetrain::cli
