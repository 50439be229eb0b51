// percetrain's entry point: parses the subcommand and turns any error into one clear line.
#include <torch/torch.h>

#include <malloc.h>

#include <iostream>
#include <map>

#include "cli/commands.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain::cli {
std::vector<CommandAdder>& registered_commands() {
  static std::vector<CommandAdder> commands;
  return commands;
}
}  // namespace percetrain::cli

int main(int argc, char** argv) {
  // LibTorch's CPU allocator takes large tensors straight from glibc, which maps every block
  // above its mmap threshold afresh and unmaps it on free, so each training step page-faults
  // its activations in again (measured: more system than user time at T = 2048). Keeping big
  // blocks on the heap and not trimming it makes steady-state steps reuse their memory.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  CLI::App app{
      "percetrain: token-level personalisation fine-tuning (PerContrast / PerCE) for Hugging Face "
      "causal LMs on LibTorch.\n\nRun 'percetrain <command> --help' for a command's options."};
  app.set_version_flag("--version", std::string("percetrain ") + PERCETRAIN_VERSION);
  app.require_subcommand(1);

  std::map<CLI::App*, percetrain::cli::Runner> runners;
  for (auto adder : percetrain::cli::registered_commands()) {
    const size_t before = app.get_subcommands({}).size();
    auto runner = adder(app);
    runners[app.get_subcommands({}).at(before)] = runner;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : runners)
      if (sub->parsed()) return run();
  } catch (const percetrain::Error& e) {
    std::cerr << "percetrain: error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "percetrain: error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "percetrain: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
