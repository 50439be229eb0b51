// Shared helpers for the test suite: paths into the source tree, scratch folders, files, and
// running the built binary.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"
#include "percetrain/util/error.hpp"

extern char** environ;

namespace percetrain::testing_util {

inline std::filesystem::path source_dir() { return PERCETRAIN_SOURCE_DIR; }
inline std::filesystem::path golden_dir() { return source_dir() / "tests" / "golden"; }
inline std::filesystem::path shared_fixtures_dir() { return source_dir().parent_path() / "shared" / "fixtures"; }

// A fresh folder under the system temp dir, removed when the object goes away.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag = "percetrain") {
    std::string templ = (std::filesystem::temp_directory_path() / (tag + "-XXXXXX")).string();
    if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

struct CommandResult {
  int status = -1;     // the exit status; -1 when the command did not exit normally
  std::string output;  // stdout, and stderr when it was captured too
};

// Runs `command` through the shell and collects what it prints.
inline CommandResult run_command(const std::string& command, bool with_stderr = true) {
  CommandResult r;
  FILE* pipe = ::popen((command + (with_stderr ? " 2>&1" : "")).c_str(), "r");
  if (!pipe) return r;
  char buffer[4096];
  while (const size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) r.output.append(buffer, n);
  const int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The built percetrain binary with `args` (a shell fragment).
inline CommandResult run_percetrain(const std::string& args, bool with_stderr = true) {
  return run_command(std::string(PERCETRAIN_BINARY) + " " + args, with_stderr);
}

// torchrun from Debian's python3-torch, or "" with the reason in *why_not (the distributed
// tests then skip). PERCETRAIN_TORCHRUN overrides it.
inline std::string torchrun_command(std::string* why_not) {
  if (const char* custom = std::getenv("PERCETRAIN_TORCHRUN")) return custom;
  const std::string python = PERCETRAIN_TEST_PYTHON;  // set by CMake: the Python whose torch matches this build
  // find_spec locates torch without importing it (an import alone takes seconds here).
  const auto probe = run_command(
      python + " -c \"import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)\"");
  if (probe.status != 0) {
    *why_not = python + " has no torch (apt-get install python3-torch, or bash scripts/setup.sh; for the CUDA "
               "build bash scripts/setup.sh --venv): the distributed tests start their ranks with torchrun";
    return "";
  }
  return python + " -m torch.distributed.run";
}

// Options every two-rank launch shares. Debian's torchrun 1.13 on Python 3.11 crashes on a
// redirect or tee of "0"; "1" (stdout to a log and the console) avoids it.
inline constexpr const char* kTorchrunCommon = " --no_python --nproc_per_node 2 --monitor_interval 0.5 -r 1 -t 1";

// A TCP port on loopback that nothing listens on now.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Both ranks of a two-rank job started by hand with the variables torchrun sets (a free loopback
// port, one intra-op thread each, as torchrun gives), so that a test holds their pids and can
// signal or kill one; rank R's stderr goes to dir/err.R.
inline void start_two_ranks(const ScratchDir& dir, const std::string& args, pid_t pids[2]) {
  const int port = free_port();
  for (int rank = 0; rank < 2; ++rank) {
    const std::string command = "RANK=" + std::to_string(rank) + " LOCAL_RANK=" + std::to_string(rank) +
                                " WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                                std::to_string(port) + " OMP_NUM_THREADS=1 exec " + PERCETRAIN_BINARY + " " + args +
                                " 2> " + (dir / ("err." + std::to_string(rank))).string();
    char* argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"), const_cast<char*>(command.c_str()), nullptr};
    ASSERT_EQ(posix_spawn(&pids[rank], "/bin/sh", nullptr, nullptr, argv, environ), 0);
  }
}

// Passes when f throws a percetrain::Error whose message contains `needle`.
template <class F>
::testing::AssertionResult throws_error(F&& f, const std::string& needle) {
  try {
    f();
  } catch (const percetrain::Error& e) {
    if (std::string(e.what()).find(needle) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "error \"" << e.what() << "\" lacks \"" << needle << "\"";
  }
  return ::testing::AssertionFailure() << "no percetrain::Error thrown";
}

// The error message a job config text (with --set overrides) is rejected with; "" when accepted.
inline std::string job_config_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    percetrain::parse_job_config(text, "/tmp/job.json", overrides);
  } catch (const percetrain::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace percetrain::testing_util
