// Each subcommand registers its options on the CLI11 app and returns the function that runs it.
// A command file registers itself with one static `CommandRegistration`, so adding a command
// touches no other file.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <vector>

namespace percetrain::cli {

using Runner = std::function<int()>;
using CommandAdder = Runner (*)(CLI::App& app);

// Every command added so far, in static-initialisation order (one translation unit each).
std::vector<CommandAdder>& registered_commands();

struct CommandRegistration {
  explicit CommandRegistration(CommandAdder adder) { registered_commands().push_back(adder); }
};

}  // namespace percetrain::cli
