// lora.per_user on two ranks (Gloo on loopback, launched by torchrun or by hand): the users are
// trained a round of one per rank at a time, rank 0 publishes every adapter, and the run ends with
// what one rank writes: byte-identical adapters, the same users.json entries and metrics rows,
// also after --stop-after or a SIGTERM and --resume.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_util.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace percetrain {
namespace per_user_dist_test {

using nlohmann::json;
using testing_util::read_file;
using testing_util::run_command;
using testing_util::run_percetrain;
using testing_util::ScratchDir;

// Five users of the demo set (u00..u04, 8 reviews each), four steps each: 20 steps in all, rounds
// {u00, u01}, {u02, u03}, {u04} on two ranks.
const char* const kUsers[] = {"u00", "u01", "u02", "u03", "u04"};

std::string job(const fs::path& dir, const std::string& out, const std::string& extra = "") {
  return "train --config " + (testing_util::source_dir() / "configs" / "demo.json").string() + " --quiet" +
         " --set model.path=" + (dir / "model").string() + " --set output.dir=" + (dir / out).string() +
         " --set data.max_records=40 --set lora.rank=4 --set lora.per_user=true --set train.epochs=4" +
         " --set train.lr=2e-2 --set train.save_every=0 --set train.distributed.timeout_s=60 " + extra;
}

// Two ranks through torchrun at a port nothing listens on now (not --standalone's fixed one).
testing_util::CommandResult two_ranks(const std::string& torchrun, const std::string& args) {
  return run_command("timeout -s KILL 120 " + torchrun + " --master_addr 127.0.0.1 --master_port " +
                     std::to_string(testing_util::free_port()) + testing_util::kTorchrunCommon + " " +
                     PERCETRAIN_BINARY + " " + args);
}

// The one-rank reference with one intra-op thread, as torchrun starts each rank
// (OMP_NUM_THREADS=1): LibTorch 2.x's CPU kernels split some reductions by the thread count, so
// byte-identical adapters need the same count (LibTorch 1.13 here gives the same bytes either way).
testing_util::CommandResult one_rank(const std::string& args) {
  return run_command(std::string("OMP_NUM_THREADS=1 ") + PERCETRAIN_BINARY + " " + args);
}

// metrics.jsonl's rows without the keys that measure time or memory, which differ between runs.
std::vector<json> rows(const fs::path& metrics) {
  std::vector<json> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    json row = json::parse(line);
    for (const char* key : {"step_seconds", "tokens_per_s", "peak_memory_mib"}) row.erase(key);
    out.push_back(row);
  }
  return out;
}

// `run` ends as the one-rank run `one`: the same adapter files byte for byte, users.json's entries
// and metrics rows, every adapter recorded in the manifest and nothing left being written.
void expect_same_as_one_rank(const fs::path& dir, const std::string& run, const std::string& one) {
  for (const std::string user : kUsers)
    for (const char* f : {"adapter_model.safetensors", "adapter_config.json"}) {
      ASSERT_TRUE(fs::exists(dir / run / "adapters" / user / f)) << run << " " << user << " " << f;
      EXPECT_EQ(read_file(dir / run / "adapters" / user / f), read_file(dir / one / "adapters" / user / f))
          << run << " " << user << " " << f;
    }
  const json users = json::parse(read_file(dir / run / "users.json"));
  EXPECT_EQ(users["users"], json::parse(read_file(dir / one / "users.json"))["users"]) << run;
  EXPECT_EQ(users["users"].size(), 5u) << run;
  const auto two_rows = rows(dir / run / "metrics.jsonl"), one_rows = rows(dir / one / "metrics.jsonl");
  EXPECT_EQ(two_rows.size(), one_rows.size()) << run;
  EXPECT_EQ(two_rows, one_rows) << run;
  const json manifest = json::parse(read_file(dir / run / "percetrain-run.json"));
  for (const std::string user : kUsers) EXPECT_TRUE(manifest["files"].contains("adapters/" + user)) << run << user;
  EXPECT_TRUE(manifest["writing"].empty()) << manifest.dump();
  for (const auto& entry : fs::recursive_directory_iterator(dir / run))
    EXPECT_EQ(entry.path().string().find(".partial"), std::string::npos) << entry.path();
}

// The users users.json records now (0 while it is not there).
size_t users_in(const fs::path& users_file) {
  if (!fs::exists(users_file)) return 0;
  const json users = json::parse(read_file(users_file), nullptr, false);
  return users.is_discarded() ? 0 : users["users"].size();
}

void wait_for_users(const fs::path& users_file, size_t count) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(60) && users_in(users_file) < count)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

TEST(PerUserDistributed, TwoRanksWriteTheAdaptersOneRankWrites) {
  std::string why_not;
  const std::string torchrun = testing_util::torchrun_command(&why_not);
  if (torchrun.empty()) GTEST_SKIP() << why_not;
  ScratchDir dir("dist-per-user");
  auto r = one_rank(job(dir.path(), "one"));
  ASSERT_EQ(r.status, 0) << r.output;
  r = two_ranks(torchrun, job(dir.path(), "two"));
  ASSERT_EQ(r.status, 0) << r.output;
  expect_same_as_one_rank(dir.path(), "two", "one");
  // Steps count over all users in user order, whichever rank trained them.
  int64_t last = 0;
  for (const auto& row : rows(dir / "two" / "metrics.jsonl")) {
    EXPECT_GE(row["step"].get<int64_t>(), last);
    last = row["step"];
  }
  EXPECT_EQ(last, 20);
  EXPECT_TRUE(fs::exists(dir / "two" / "tb"));

  // --stop-after 9 stops after the round that holds step 9 (u02, u03: steps 9..16): --resume
  // trains u04.
  r = two_ranks(torchrun, job(dir.path(), "stopped", "--stop-after 9"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "stopped" / "adapters" / "u03" / "adapter_model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "stopped" / "adapters" / "u04"));
  EXPECT_EQ(json::parse(read_file(dir / "stopped" / "users.json"))["users"].size(), 4u);
  r = two_ranks(torchrun, job(dir.path(), "stopped", "--resume"));
  ASSERT_EQ(r.status, 0) << r.output;
  expect_same_as_one_rank(dir.path(), "stopped", "one");
}

// Both ranks started by hand, rank 1 stopped by SIGTERM in the second round: both ranks stop, the first round's adapters are
// kept, the metrics rows of the interrupted users dropped, and --resume on two ranks ends as the
// one-rank run.
TEST(PerUserDistributed, ASignalledRunResumesOnTwoRanksToTheOneRankResult) {
  std::string why_not;
  const std::string torchrun = testing_util::torchrun_command(&why_not);
  if (torchrun.empty()) GTEST_SKIP() << why_not;
  ScratchDir dir("dist-per-user-signal");
  auto r = one_rank(job(dir.path(), "one"));
  ASSERT_EQ(r.status, 0) << r.output;

  pid_t pids[2];
  testing_util::start_two_ranks(dir, job(dir.path(), "signalled"), pids);
  // Once users.json records the first round (u00, u01), the ranks are in the second (u02, u03),
  // whose four steps take about a second here.
  const fs::path users_file = dir / "signalled" / "users.json";
  auto users_done = [&] { return users_in(users_file); };
  wait_for_users(users_file, 2);
  // Rank 1 alone: the ranks' once-a-step heartbeat stops rank 0 after its current step too.
  EXPECT_EQ(::kill(pids[1], SIGTERM), 0);
  for (int rank = 0; rank < 2; ++rank) {
    int status = 0;
    ::waitpid(pids[rank], &status, 0);
    const std::string err = read_file(dir / ("err." + std::to_string(rank)));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM) << "rank " << rank << ": " << err;
    EXPECT_NE(err.find("interrupted by SIGTERM"), std::string::npos) << err;
    if (rank == 0) std::printf("rank 0 after SIGTERM: %s", err.substr(err.rfind("percetrain: interrupted")).c_str());
  }
  EXPECT_FALSE(fs::exists(dir / "signalled" / "adapters" / "u04"));
  const size_t kept = users_done();
  EXPECT_GE(kept, 2u);
  EXPECT_LT(kept, 5u);
  const json manifest = json::parse(read_file(dir / "signalled" / "percetrain-run.json"));
  EXPECT_TRUE(manifest["writing"].empty()) << manifest.dump();

  // Without --quiet, for the line that names the user it resumes with.
  std::string resume = job(dir.path(), "signalled", "--resume");
  resume.replace(resume.find(" --quiet"), 8, "");
  r = two_ranks(torchrun, resume);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resuming with user " + std::to_string(kept + 1) + " (" + kUsers[kept] + ")"),
            std::string::npos)
      << r.output;
  expect_same_as_one_rank(dir.path(), "signalled", "one");
}


// Rank 1 killed with SIGKILL in the second round: rank 0 names it within the timeout (the
// heartbeat of the next step finds it) and exits 1; the first round's adapters are kept.
TEST(PerUserDistributed, ALostRankIsNamedAndTheFinishedUsersAreKept) {
  ScratchDir dir("dist-per-user-lost");
  ASSERT_EQ(run_percetrain(job(dir.path(), "probe", "--set data.max_records=8")).status, 0);  // the model folder
  pid_t pids[2];
  testing_util::start_two_ranks(dir, job(dir.path(), "lost", "--set train.distributed.timeout_s=10"), pids);
  const fs::path users_file = dir / "lost" / "users.json";
  wait_for_users(users_file, 2);
  EXPECT_EQ(::kill(pids[1], SIGKILL), 0);
  const auto killed = std::chrono::steady_clock::now();
  int status = 0;
  ::waitpid(pids[1], &status, 0);
  auto since_kill = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count(); };
  while (::waitpid(pids[0], &status, WNOHANG) == 0 && since_kill() < 30)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double took = since_kill();
  if (::kill(pids[0], 0) == 0) {
    ::kill(pids[0], SIGKILL);
    ::waitpid(pids[0], &status, 0);
    FAIL() << "rank 0 still ran " << took << " s after rank 1 was killed";
  }
  const std::string err = read_file(dir / "err.0");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << err;
  EXPECT_NE(err.find("rank 1"), std::string::npos) << err;
  EXPECT_LT(took, 15.0) << err;
  std::printf("rank 0 stopped %.2f s after rank 1 was killed: %s", took, err.substr(err.rfind("percetrain:")).c_str());
  EXPECT_GE(users_in(users_file), 2u);
  EXPECT_TRUE(fs::exists(dir / "lost" / "adapters" / "u01" / "adapter_model.safetensors"));

  // The killed rank's scratch folder (its rows and adapter before they go to rank 0) is removed by
  // the next per-user run's rank 1; the resumed run ends complete.
  const fs::path scratch = fs::temp_directory_path() / ("percetrain-per-user-rank1-" + std::to_string(pids[1]));
  EXPECT_TRUE(fs::exists(scratch));
  std::string why_not;
  const std::string torchrun = testing_util::torchrun_command(&why_not);
  if (torchrun.empty()) return;
  const auto r = two_ranks(torchrun, job(dir.path(), "lost", "--set train.distributed.timeout_s=10 --resume"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(users_in(users_file), 5u);
  EXPECT_FALSE(fs::exists(scratch));
}

}  // namespace per_user_dist_test
}  // namespace percetrain
