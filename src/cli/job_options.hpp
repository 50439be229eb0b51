// The options every job command shares: --config FILE and repeatable --set section.key=value.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"

namespace percetrain::cli {

// `what` completes the --config help: "Job config (JSON): <what>".
inline void add_job_options(CLI::App* cmd, std::string& config, std::vector<std::string>& overrides,
                            const std::string& what) {
  cmd->add_option("--config", config, "Job config (JSON): " + what)->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", overrides,
                  "Override a config key, e.g. --set train.lr=2e-5 (repeatable; paths resolve against the "
                  "config's folder)");
}

}  // namespace percetrain::cli
