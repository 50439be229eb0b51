// percetrain's entry point: parses the command line and turns any error into one clear line.
// Exit status: 0 done, 1 the job failed, 2 a command-line mistake, 128 + signal after an interrupt
// that saved its work (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
#include <torch/torch.h>

#include <malloc.h>

#include <algorithm>
#include <iostream>
#include <map>

#include "cli/commands.hpp"
#include "config/json_reader.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/interrupt.hpp"
#include "percetrain/util/text.hpp"

namespace percetrain::cli {

std::vector<CommandAdder>& registered_commands() {
  static std::vector<CommandAdder> commands;
  return commands;
}

namespace {

constexpr int kUsageError = 2;

int usage_error(const std::string& message, const std::string& hint) {
  std::cerr << "percetrain: error: " << message << (hint.empty() ? "" : " (" + hint + ")") << "\n";
  return kUsageError;
}

std::vector<std::string> command_names(CLI::App& app) {
  std::vector<std::string> names;
  for (const auto* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  return names;
}

// The long option names of a command ("--config", ...), its help flag included.
std::vector<std::string> option_names(const CLI::App& cmd) {
  std::vector<std::string> names = {"--help"};
  for (const auto* opt : cmd.get_options())
    for (const auto& name : opt->get_lnames()) names.push_back("--" + name);
  return names;
}

// Catches what CLI11 would report confusingly (or only after another error): a missing or
// unknown command, and unknown options, each with a did-you-mean. Returns -1 when the command line
// looks right, else the exit status after printing one line.
int check_command_line(CLI::App& app, int argc, char** argv) {
  const auto commands = command_names(app);
  if (argc < 2) {
    std::cerr << app.help() << "\n";
    return kUsageError;
  }
  const std::string first = argv[1];
  if (first == "--help" || first == "-h" || first == "--version") return -1;
  if (first.rfind("-", 0) == 0)
    return usage_error("a command must come first, before '" + first + "'",
                       "e.g. percetrain train --config job.json; commands: " + join(commands));
  CLI::App* cmd = nullptr;
  for (auto* sub : app.get_subcommands({}))
    if (sub->get_name() == first) cmd = sub;
  if (!cmd) {
    const std::string guess = percetrain::closest_key(first, commands);
    return usage_error("unknown command '" + first + "'",
                       guess.empty() ? "commands: " + join(commands) : "did you mean '" + guess + "'?");
  }
  const auto known = option_names(*cmd);
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (arg.rfind("--", 0) != 0) continue;
    const std::string name = arg.substr(0, arg.find('='));
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    const std::string guess = percetrain::closest_key(name, known);
    std::string hint = guess.empty() ? "see percetrain " + first + " --help" : "did you mean '" + guess + "'?";
    // Output files are replaced without asking; --overwrite is for the commands that write folders.
    if (name == "--overwrite")
      hint = first + " replaces its output files without --overwrite, which is for train, init-model and "
             "merge-adapter (they write folders)";
    return usage_error("unknown option '" + name + "' for '" + first + "'", hint);
  }
  return -1;
}

// The command line again, with --resume added: what continues an interrupted job.
std::string resume_command(int argc, char** argv) {
  std::string out = "percetrain";
  bool has_resume = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    has_resume |= arg == "--resume";
    const bool plain = arg.find_first_of(" \t\"'$`\\!*?;&|<>()") == std::string::npos && !arg.empty();
    out += " " + (plain ? arg : "'" + arg + "'");
  }
  return has_resume ? out : out + " --resume";
}

}  // namespace
}  // namespace percetrain::cli

int main(int argc, char** argv) {
  // LibTorch's CPU allocator takes large tensors straight from glibc, which maps every block
  // above its mmap threshold afresh and unmaps it on free, so each training step page-faults
  // its activations in again (measured: more system than user time at T = 2048). Keeping big
  // blocks on the heap and not trimming it makes steady-state steps reuse their memory.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  using namespace percetrain::cli;
  CLI::App app{
      "percetrain: token-level personalisation fine-tuning (PerContrast / PerCE) for Hugging Face "
      "causal LMs on LibTorch.\n\nRun 'percetrain <command> --help' for a command's options. Exit status: 0 done, "
      "1 the job failed, 2 a command-line mistake, 130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP after saving "
      "(continue with --resume)."};
  app.set_version_flag("--version", [] { return std::string("percetrain ") + PERCETRAIN_VERSION + " (" + percetrain::build_summary() + ")"; });
  app.require_subcommand(1);

  std::map<CLI::App*, Runner> runners;
  for (auto adder : registered_commands()) {
    const size_t before = app.get_subcommands({}).size();
    auto runner = adder(app);
    runners[app.get_subcommands({}).at(before)] = runner;
  }

  if (const int status = check_command_line(app, argc, argv); status >= 0) return status;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string command;
    for (auto& [sub, run] : runners)
      if (sub->parsed()) command = sub->get_name();
    return usage_error(e.what(), "see percetrain " + (command.empty() ? std::string("--help") : command + " --help"));
  }
  try {
    for (auto& [sub, run] : runners)
      if (sub->parsed()) return run();
  } catch (const percetrain::Interrupted& e) {
    std::cerr << "percetrain: " << e.what() << "\npercetrain: continue with: " << resume_command(argc, argv) << "\n";
    return 128 + e.signal();
  } catch (const percetrain::UsageError& e) {
    std::cerr << "percetrain: error: " << e.what() << "\n";
    return kUsageError;
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
