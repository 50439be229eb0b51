// torchrun --max_restarts with train.resume auto: ranks SIGKILLed mid-run make the launcher
// restart the group, which resumes from the newest complete checkpoint and ends with the model an
// uninterrupted run ends with, byte for byte.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

extern char** environ;

namespace fs = std::filesystem;

// Named, not anonymous: the test sources are compiled in unity batches, so helpers of the same
// name in another test file must not meet these.
namespace percetrain::elastic_restart_test {

using testing_util::read_file;
using testing_util::ScratchDir;

constexpr int kSteps = 12;
constexpr int kLauncherLimitS = 100;  // timeout -s KILL around each torchrun

// Every rank runs through this script, which notes its pid under pids/<attempt>-<rank> (attempt:
// torchrun's restart count) and then becomes percetrain: the test can kill a given rank of a given
// attempt without any hook in percetrain.
void write_rank_script(const fs::path& dir) {
  const fs::path script = dir / "rank.sh";
  std::ofstream(script) << "#!/bin/sh\n"
                        << "echo $$ > \"" << (dir / "pids").string() << "/${TORCHELASTIC_RESTART_COUNT}-${RANK}\"\n"
                        << "exec " << PERCETRAIN_BINARY << " \"$@\"\n";
  fs::permissions(script, fs::perms::owner_all);
  fs::create_directories(dir / "pids");
}

// Two ranks through torchrun with up to two restarts on a rendezvous port of its own (not
// --standalone's fixed 29400: other tests launch torchrun at the same time). A checkpoint after
// every step, small timeouts so that a survivor fails fast and the agent restarts the group.
std::string launch_line(const std::string& torchrun, const fs::path& dir, const std::string& out) {
  const std::string endpoint = "127.0.0.1:" + std::to_string(testing_util::free_port());
  return "timeout -s KILL " + std::to_string(kLauncherLimitS) + " " + torchrun + testing_util::kTorchrunCommon +
         " --nnodes 1 --rdzv_backend c10d --rdzv_endpoint " + endpoint + " --rdzv_id " + out + " --max_restarts 2 " +
         (dir / "rank.sh").string() + " train --config " +
         (testing_util::source_dir() / "configs" / "demo.json").string() + " --set model.path=" +
         (dir / "model").string() + " --set output.dir=" + (dir / out).string() + " --set data.valid_file=" +
         " --set train.max_steps=" + std::to_string(kSteps) +
         " --set train.save_every=1 --set train.log_every=1 --set train.keep_last=2" +
         " --set train.distributed.timeout_s=10 --set train.resume=auto";
}

std::vector<int> logged_steps(const fs::path& metrics) {
  std::vector<int> steps;
  std::istringstream in(read_file(metrics));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) steps.push_back(nlohmann::json::parse(line).at("step").get<int>());
  return steps;
}

// What follows each `needle` in `text` up to the next space, e.g. the step of every "resuming
// after step ".
std::vector<std::string> words_after(const std::string& text, const std::string& needle) {
  std::vector<std::string> out;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    const size_t from = at + needle.size();
    out.push_back(text.substr(from, text.find_first_of(" \n", from) - from));
  }
  return out;
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

// Attempt 0: rank 1 is killed right after checkpoint 3 is published (rank 0 then fails in its
// next collective, naming rank 1). Attempt 1 resumes, and its rank 0 is killed as soon as a
// checkpoint staging folder of its own appears (while it writes it, or just after). Attempt 2
// resumes from the newest complete checkpoint, removes the half-written one, and finishes.
TEST(ElasticRestart, KilledRanksRestartTheGroupWhichEndsAsTheUninterruptedRun) {
  std::string why_not;
  const std::string torchrun = testing_util::torchrun_command(&why_not);
  if (torchrun.empty()) GTEST_SKIP() << why_not;
  ScratchDir dir("elastic");
  write_rank_script(dir.path());

  auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  auto whole = testing_util::run_command(launch_line(torchrun, dir.path(), "whole"));
  ASSERT_EQ(whole.status, 0) << whole.output;
  const double uninterrupted_s = seconds();
  fs::remove_all(dir / "pids");
  fs::create_directories(dir / "pids");

  const fs::path run = dir / "run", log = dir / "launcher.log";
  const std::string command = "exec " + launch_line(torchrun, dir.path(), "run") + " > " + log.string() + " 2>&1";
  char* argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"), const_cast<char*>(command.c_str()), nullptr};
  pid_t launcher = 0;
  start = std::chrono::steady_clock::now();
  ASSERT_EQ(posix_spawn(&launcher, "/bin/sh", nullptr, nullptr, argv, environ), 0);
  int status = 0;
  bool launcher_done = false;
  // Polls every 2 ms until `ready` (false: the launcher ended first, or the time is up).
  auto wait_for = [&](const std::function<bool()>& ready) {
    while (seconds() < kLauncherLimitS) {
      if (ready()) return true;
      if (::waitpid(launcher, &status, WNOHANG) == launcher) {
        launcher_done = true;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  };
  auto pid_of = [&](int attempt, int rank) {
    return std::atoi(read_file(dir / "pids" / (std::to_string(attempt) + "-" + std::to_string(rank))).c_str());
  };
  auto kill_rank = [&](int attempt, int rank) {
    const pid_t pid = pid_of(attempt, rank);
    return pid > 0 && ::kill(pid, SIGKILL) == 0;
  };

  // Attempt 0: rank 1 dies after checkpoint 3.
  ASSERT_TRUE(wait_for([&] { return fs::exists(run / "checkpoint-3") && pid_of(0, 1) > 0; }))
      << "attempt 0 never published checkpoint 3\n" << read_file(log);
  ASSERT_TRUE(kill_rank(0, 1));
  const double first_kill_s = seconds();
  ASSERT_FALSE(fs::exists(run / "final")) << "attempt 0 finished before the kill; the test needs a longer run";

  // Attempt 1: rank 0 dies while (or just after) it stages a checkpoint of its own.
  ASSERT_TRUE(wait_for([&] { return pid_of(1, 0) > 0; })) << "no restart after rank 1 was killed\n" << read_file(log);
  const double restarted_s = seconds();
  std::string staged;
  ASSERT_TRUE(wait_for([&] {
    // From step 6 on, and with the lock held by attempt 1's rank 0: attempt 0 (rank 1 dead
    // after step 3) can have staged nothing that late.
    if (read_file(run / ".percetrain.lock") != std::to_string(pid_of(1, 0))) return false;
    for (int step = 6; step < kSteps; ++step) {
      char name[64];
      std::snprintf(name, sizeof name, "checkpoint-%d.partial", step);
      if (fs::exists(run / name)) {
        staged = name;
        return true;
      }
    }
    return false;
  })) << "attempt 1 never staged a checkpoint\n" << read_file(log);
  ASSERT_TRUE(kill_rank(1, 0));
  const double second_kill_s = seconds();

  // Attempt 2 finishes.
  wait_for([] { return false; });
  if (!launcher_done) {
    ::kill(launcher, SIGKILL);
    ::waitpid(launcher, &status, 0);
    FAIL() << "torchrun still runs " << seconds() << " s after its start\n" << read_file(log);
  }
  const double total_s = seconds();
  const std::string output = read_file(log);
  ASSERT_TRUE(WIFEXITED(status)) << output;
  ASSERT_EQ(WEXITSTATUS(status), 0) << output;
  EXPECT_GT(pid_of(2, 0), 0) << "attempt 2 never started\n" << output;
  // Each survivor failed in a collective, naming the killed rank (the agent then restarted the group).
  EXPECT_NE(output.find("rank 1 was lost"), std::string::npos) << output;
  EXPECT_NE(output.find("rank 0 was lost"), std::string::npos) << output;
  const auto resumed = words_after(output, "resuming after step ");
  EXPECT_EQ(resumed.size(), 2u) << output;

  // Byte for byte the uninterrupted run's model, every step logged once, no staging folder left.
  EXPECT_EQ(read_file(run / "final" / "model.safetensors"), read_file(dir / "whole" / "final" / "model.safetensors"));
  std::vector<int> expected;
  for (int s = 1; s <= kSteps; ++s) expected.push_back(s);
  EXPECT_EQ(logged_steps(run / "metrics.jsonl"), expected);
  for (const auto& entry : fs::directory_iterator(run))
    EXPECT_NE(entry.path().extension(), ".partial") << entry.path() << " is left over";
  const bool removed_half_written = output.find("removing " + staged) != std::string::npos;
  std::printf("uninterrupted 2-rank run %.1f s; elastic run %.1f s: rank 1 killed at %.1f s after checkpoint 3, "
              "attempt 1 started at %.1f s, rank 0 killed at %.1f s at %s (%s); the survivors failed after %s s of "
              "waiting in their collective; resumed after steps %s; final model identical\n",
              uninterrupted_s, total_s, first_kill_s, restarted_s, second_kill_s, staged.c_str(),
              removed_half_written ? "left half written and removed by attempt 2" : "published before it died",
              joined(words_after(output, "failed after ")).c_str(), joined(resumed).c_str());
}

}  // namespace percetrain::elastic_restart_test
