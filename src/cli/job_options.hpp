// The options every job command shares (--config FILE and repeatable --set section.key=value),
// and the parser's checks of option values, so that a mistake is one line and exit status 2
// before anything is printed or loaded.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"

namespace percetrain::cli {

// A whole number of at least `min`, in decimal. The value is rewritten to plain decimal, so that
// CLI11 neither reads 010 as octal nor wraps -1 into an unsigned option.
CLI::Validator at_least(int64_t min);
// --device: cpu, cuda, cuda:N or auto (whether that device exists is checked where it is used).
CLI::Validator device_spec();
// --dtype: float32, bfloat16, float16 (or fp32, bf16, fp16) or auto.
CLI::Validator dtype_spec();
// --set: section.key=value with a key the job config has (the value is checked with the config).
CLI::Validator config_assignment();

// `what` completes the --config help: "Job config (JSON): <what>".
inline void add_job_options(CLI::App* cmd, std::string& config, std::vector<std::string>& overrides,
                            const std::string& what) {
  cmd->add_option("--config", config, "Job config (JSON): " + what)->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", overrides,
                  "Override a config key, e.g. --set train.lr=2e-5 (repeatable; paths resolve against the "
                  "config's folder)")
      ->check(config_assignment());
}

}  // namespace percetrain::cli
