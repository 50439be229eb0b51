// Two ranks on loopback with Gloo, started by the real launcher (torchrun from Debian's
// python3-torch) running this test binary's DistWorker tests: exact collectives and reductions,
// a rank killed with SIGKILL, a rank that hangs. Each launch is bounded by `timeout -s KILL`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>

#include "test_util.hpp"

namespace percetrain {
namespace {

namespace fs = std::filesystem;
using testing_util::read_file;
using testing_util::run_command;
using testing_util::ScratchDir;

using testing_util::free_port;
using testing_util::torchrun_command;

#define REQUIRE_TORCHRUN(var)                         \
  std::string why_not;                                \
  const std::string var = torchrun_command(&why_not); \
  if (var.empty()) GTEST_SKIP() << why_not

// Options every launch shares. torchrun 1.13 on Python 3.11 crashes on a redirect or tee of "0"
// (IntFlag iteration skips the zero member): redirecting and teeing stdout ("1") avoids that
// value and still shows every rank's output, prefixed [default<rank>]:.
const char* const kCommon = testing_util::kTorchrunCommon;

std::string self() { return fs::read_symlink("/proc/self/exe").string(); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// "elapsed_s=..." and the message a rank wrote before it exited with its error.
struct RankError {
  double elapsed_s = -1;
  std::string message;
};
RankError rank_error(const ScratchDir& dir, int rank) {
  const std::string text = read_file(dir / ("error." + std::to_string(rank)));
  RankError e;
  const size_t newline = text.find('\n');
  if (text.rfind("elapsed_s=", 0) != 0 || newline == std::string::npos) return e;
  e.elapsed_s = std::stod(text.substr(10, newline - 10));
  e.message = text.substr(newline + 1);
  return e;
}

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Rank 0 hosts the store (--standalone): collectives, the bucketed reducer with and without
// hooks, and ZeRO 1 / 2, all compared with sums computed locally.
TEST(DistLaunch, CollectivesReducerAndZeroAreExactOnTwoRanks) {
  REQUIRE_TORCHRUN(torchrun);
  ScratchDir dir("percetrain-dist");
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_command("PERCETRAIN_DIST_SCENARIO=exact PERCETRAIN_DIST_DIR=" + dir.path().string() +
                             " PERCETRAIN_DIST_TIMEOUT_S=30 timeout -s KILL 120 " + torchrun + " --standalone" +
                             kCommon + " --log_dir " + (dir / "logs").string() + " " + self() +
                             " --gtest_filter=DistWorker.Collectives:DistWorker.ReducerSumsGradients:"
                             "DistWorker.ZeroShardsSumAndStep");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(count(r.output, "[  PASSED  ] 3 tests."), 2) << r.output;
  std::printf("two ranks through torchrun: %.1f s\n", seconds_since(t0));
}

// torchrun's agent hosts the store (static rendezvous): rank 1 is killed with SIGKILL while rank 0
// waits in an all-reduce; rank 0 exits 1 at once with an error naming rank 1. The ranks ignore
// SIGTERM here so that torchrun, which stops the survivors once it notices the death, cannot cut
// rank 0's own error path short; a shell records each rank's exit status.
TEST(DistLaunch, KilledRankIsNamedBySurvivor) {
  REQUIRE_TORCHRUN(torchrun);
  ScratchDir dir("percetrain-dist");
  const std::string d = dir.path().string();
  const double timeout_s = 20;
  testing_util::write_file(
      dir / "launch.sh",
      "PERCETRAIN_DIST_SCENARIO=lose_peer PERCETRAIN_DIST_DIR=" + d + " PERCETRAIN_DIST_TIMEOUT_S=" +
          std::to_string(timeout_s) + " timeout -s KILL 90 " + torchrun + " --master_addr 127.0.0.1 --master_port " +
          std::to_string(free_port()) + kCommon + " --log_dir " + d + "/logs sh -c 'trap \"\" TERM; \"$0\" \"$@\"; "
          "rc=$?; echo $rc > \"$PERCETRAIN_DIST_DIR/rc.$RANK\"; exit $rc' " + self() + " --gtest_filter=DistWorker.LosePeer &\n"
          "launcher=$!\n"
          "i=0; while [ ! -s " + d + "/ready.1 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n"
          "[ -s " + d + "/ready.1 ] && kill -9 \"$(cat " + d + "/ready.1)\" && echo 'test: killed rank 1'\n"
          "wait $launcher; echo \"torchrun exit status $?\"\n");
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_command("bash " + (dir / "launch.sh").string());
  EXPECT_NE(r.output.find("test: killed rank 1"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(dir / "rc.0"), "1\n") << r.output;
  EXPECT_EQ(read_file(dir / "rc.1"), "137\n") << r.output;
  const auto e = rank_error(dir, 0);
  EXPECT_NE(e.message.find("dist rank 0 of 2: all_reduce #"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("rank 1 was lost"), std::string::npos) << e.message;
  EXPECT_EQ(count(e.message, "\n"), 1) << "one line: " << e.message;
  EXPECT_GE(e.elapsed_s, 0);
  EXPECT_LT(e.elapsed_s, timeout_s) << e.message;
  EXPECT_NE(r.output.find("percetrain: dist rank 0 of 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("torchrun exit status 1"), std::string::npos) << r.output;
  std::printf("rank 0 failed %.3f s after entering the all-reduce: %s", e.elapsed_s, e.message.c_str());
  std::printf("launch, kill and teardown: %.1f s\n", seconds_since(t0));
}

// Rank 1 lives on without joining the all-reduce: rank 0 fails after its 3 s timeout, saying
// rank 1 is alive but behind, exits 1, and torchrun stops rank 1.
TEST(DistLaunch, HungRankTimesOut) {
  REQUIRE_TORCHRUN(torchrun);
  ScratchDir dir("percetrain-dist");
  const double timeout_s = 3;
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_command("PERCETRAIN_DIST_SCENARIO=hang PERCETRAIN_DIST_DIR=" + dir.path().string() +
                             " PERCETRAIN_DIST_TIMEOUT_S=" + std::to_string(timeout_s) + " timeout -s KILL 90 " +
                             torchrun + " --standalone" + kCommon + " --log_dir " + (dir / "logs").string() + " " +
                             self() + " --gtest_filter=DistWorker.Hang");
  const double total = seconds_since(t0);
  EXPECT_NE(r.status, 0) << r.output;
  const auto e = rank_error(dir, 0);
  EXPECT_NE(e.message.find("rank 1 (at #"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("is alive but has not reached this collective"), std::string::npos) << e.message;
  EXPECT_GE(e.elapsed_s, timeout_s - 0.5) << e.message;
  EXPECT_LT(e.elapsed_s, timeout_s + 3.0) << e.message;
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(rank\s*:\s*0 \(local_rank: 0\)\s*\n\s*exitcode\s*:\s*1 )")))
      << r.output;
  EXPECT_LT(total, 60.0) << "rank 1 was not stopped";
  std::printf("rank 0 failed %.3f s after entering the all-reduce: %s", e.elapsed_s, e.message.c_str());
  std::printf("launch, timeout and teardown: %.1f s\n", total);
}

}  // namespace
}  // namespace percetrain
