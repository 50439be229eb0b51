// Each subcommand registers its options on the CLI11 app and returns the function that runs it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace percetrain::cli {

using Runner = std::function<int()>;

Runner add_init_model_command(CLI::App& app);
Runner add_logprobs_command(CLI::App& app);

}  // namespace percetrain::cli
