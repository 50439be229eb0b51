// `percetrain train` on two ranks (Gloo on loopback, launched by torchrun) computes what one
// process computes for the same global batch, resumes exactly, and stops with a clear line when a
// rank is lost.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "percetrain/model/hf_folder.hpp"
#include "percetrain/model/lora.hpp"
#include "test_util.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace percetrain {
namespace {

using testing_util::read_file;
using testing_util::run_command;
using testing_util::run_percetrain;
using testing_util::ScratchDir;

// Three steps of the demo with Adam in its linear regime (eps >> |g|: the update is ~ lr * g), so
// that parameters compare gradients, not Adam's sign-like amplification of rounding. The model
// folder is made once by a single-process run.
std::string job(const fs::path& dir, const std::string& out, const std::string& extra) {
  return "train --config " + (testing_util::source_dir() / "configs" / "demo.json").string() + " --quiet" +
         " --set model.path=" + (dir / "model").string() + " --set output.dir=" + (dir / out).string() +
         " --set train.max_steps=3 --set data.valid_file= --set train.adam_eps=1 --set train.lr=1" +
         " --set train.schedule=constant --set train.warmup_ratio=0 --set train.grad_clip=0 " + extra;
}

testing_util::CommandResult two_ranks(const std::string& torchrun, const std::string& args) {
  return run_command("timeout -s KILL 120 " + torchrun + " --standalone" + testing_util::kTorchrunCommon + " " +
                     PERCETRAIN_BINARY + " " + args);
}

// max |a - b| / max |a| over all parameters.
double relative_difference(const fs::path& a, const fs::path& b) {
  auto x = load_causal_lm(a.string(), torch::kCPU, torch::kFloat32);
  auto y = load_causal_lm(b.string(), torch::kCPU, torch::kFloat32);
  auto py = y.model->named_parameters();
  double worst = 0;
  for (const auto& p : x.model->named_parameters())
    worst = std::max(worst, ((p.value() - py[p.key()]).abs().max() / p.value().abs().max()).item<double>());
  return worst;
}

TEST(DistributedTrain, TwoRanksComputeWhatOneComputesWithEveryZeroStage) {
  std::string why_not;
  const std::string torchrun = testing_util::torchrun_command(&why_not);
  if (torchrun.empty()) GTEST_SKIP() << why_not;
  ScratchDir dir("dist-train");
  for (const std::string objective : {"perce", "ce"}) {
    const std::string one = "one-" + objective;
    auto r = run_percetrain(job(dir.path(), one, "--set objective.name=" + objective));
    ASSERT_EQ(r.status, 0) << r.output;
    for (const int zero : {0, 1, 2}) {
      if (objective == "ce" && zero > 0) continue;
      const std::string two = "two-" + objective + "-zero" + std::to_string(zero);
      r = two_ranks(torchrun, job(dir.path(), two,
                                  "--set objective.name=" + objective + " --set train.distributed.zero=" +
                                      std::to_string(zero) + " --set train.distributed.timeout_s=60"));
      ASSERT_EQ(r.status, 0) << r.output;
      const double diff = relative_difference(dir / one / "final", dir / two / "final");
      std::printf("%s, zero %d: max relative parameter difference 2 ranks vs 1: %.3g\n", objective.c_str(), zero, diff);
      EXPECT_LT(diff, 1e-6) << objective << " zero " << zero;
      EXPECT_NE(read_file(dir / two / "metrics.jsonl").find("\"comm_bytes\""), std::string::npos);
    }
  }
}

TEST(DistributedTrain, ATwoRankRunResumesExactlyAndOnlyWithItsLayout) {
  std::string why_not;
  const std::string torchrun = testing_util::torchrun_command(&why_not);
  if (torchrun.empty()) GTEST_SKIP() << why_not;
  ScratchDir dir("dist-resume");
  const std::string sharded = "--set train.distributed.zero=1 --set train.distributed.timeout_s=60";
  ASSERT_EQ(run_percetrain(job(dir.path(), "probe", "--set train.max_steps=1")).status, 0);  // the model folder
  auto r = two_ranks(torchrun, job(dir.path(), "whole", sharded));
  ASSERT_EQ(r.status, 0) << r.output;
  r = two_ranks(torchrun, job(dir.path(), "parts", sharded + " --stop-after 2"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "parts" / "checkpoint-2" / "shard-rank-00001.pt"));
  EXPECT_TRUE(fs::exists(dir / "parts" / "checkpoint-2" / "optimizer-rank-00000.pt"));
  // One process cannot take over two ranks' optimizer shards.
  r = run_percetrain(job(dir.path(), "parts", sharded + " --resume"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("was written by 2 ranks with train.distributed.zero 1; this run has 1 with zero 0"),
            std::string::npos)
      << r.output;
  r = two_ranks(torchrun, job(dir.path(), "parts", sharded + " --resume"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_file(dir / "parts" / "final" / "model.safetensors"), read_file(dir / "whole" / "final" / "model.safetensors"));
}

// LoRA on two ranks: the frozen base is not reduced or sharded, the adapters are; the adapter
// equals the one-rank run's, with dropout too: a sample's mask is a function of (seed, step,
// sample), not of the rank or the micro-batch that computes it, so another micro_batch_size gives
// the same adapter as well (to the rounding of another summation order).
TEST(DistributedTrain, TwoRanksTrainTheAdapterOneRankTrains) {
  std::string why_not;
  const std::string torchrun = testing_util::torchrun_command(&why_not);
  if (torchrun.empty()) GTEST_SKIP() << why_not;
  ScratchDir dir("dist-lora");
  const std::string lora = "--set lora.rank=4 --set lora.alpha=8 --set lora.dropout=0 --set train.distributed.timeout_s=60 ";
  auto r = run_percetrain(job(dir.path(), "one", lora));
  ASSERT_EQ(r.status, 0) << r.output;
  r = two_ranks(torchrun, job(dir.path(), "two", lora + "--set train.distributed.zero=1"));
  ASSERT_EQ(r.status, 0) << r.output;
  auto adapter = [&](const std::string& run) {
    auto loaded = load_causal_lm((dir / "model").string(), torch::kCPU, torch::kFloat32);
    load_lora_adapter(*loaded.model, (dir / run / "final").string());
    return lora_parameters(*loaded.model);
  };
  // max |a - b| / max |a| over the adapter tensors.
  auto difference = [&](const std::string& a, const std::string& b) {
    const auto x = adapter(a), y = adapter(b);
    EXPECT_EQ(x.size(), y.size());
    EXPECT_FALSE(x.empty());
    double worst = 0;
    for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
      EXPECT_EQ(x[i].first, y[i].first);
      worst = std::max(worst, ((x[i].second - y[i].second).abs().max() / x[i].second.abs().max()).item<double>());
    }
    return worst;
  };
  double worst = difference("one", "two");
  std::printf("LoRA, zero 1: max relative adapter difference 2 ranks vs 1: %.3g\n", worst);
  EXPECT_LT(worst, 1e-6);

  const std::string dropout = lora + "--set lora.dropout=0.1 ";
  r = run_percetrain(job(dir.path(), "one-dropout", dropout));
  ASSERT_EQ(r.status, 0) << r.output;
  r = two_ranks(torchrun, job(dir.path(), "two-dropout", dropout + "--set train.distributed.zero=1"));
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_percetrain(job(dir.path(), "one-dropout-mb2", dropout + "--set train.micro_batch_size=2"));
  ASSERT_EQ(r.status, 0) << r.output;
  worst = difference("one-dropout", "two-dropout");
  std::printf("LoRA dropout 0.1, zero 1: max relative adapter difference 2 ranks vs 1: %.3g\n", worst);
  EXPECT_LT(worst, 1e-6);
  worst = difference("one-dropout", "one-dropout-mb2");
  std::printf("LoRA dropout 0.1: max relative adapter difference micro-batch 2 vs 4: %.3g\n", worst);
  EXPECT_LT(worst, 1e-5);
  worst = difference("one", "one-dropout");
  std::printf("LoRA: max relative adapter difference dropout 0.1 vs 0: %.3g\n", worst);
  EXPECT_GT(worst, 1e-3) << "dropout acts";
}

// Validation by generation, best/ and early stopping on two ranks (issue 25, item 2): each rank
// decodes a stretch of the validation batches, the scores are reduced, rank 0 decides and writes
// best/, every rank stops at the same step; the curve is one rank's.
TEST(DistributedTrain, ValidationByGenerationBestAndEarlyStoppingFollowOneRank) {
  std::string why_not;
  const std::string torchrun = testing_util::torchrun_command(&why_not);
  if (torchrun.empty()) GTEST_SKIP() << why_not;
  ScratchDir dir("dist-valid");
  const std::string valid = (testing_util::source_dir() / "data" / "demo" / "valid.jsonl").string();
  const std::string settings = "--set train.max_steps=6 --set data.valid_file=" + valid +
                               " --set data.max_records=16 --set train.eval_generate.every=2"
                               " --set train.eval_generate.max_records=6 --set train.eval_generate.max_new_tokens=6"
                               " --set generate.batch_size=2 --set train.best_metric=valid_rougeL"
                               " --set train.early_stopping_patience=1 --set train.distributed.timeout_s=60";
  auto r = run_percetrain(job(dir.path(), "one", settings));
  ASSERT_EQ(r.status, 0) << r.output;
  r = two_ranks(torchrun, job(dir.path(), "two", settings));
  ASSERT_EQ(r.status, 0) << r.output;
  auto generation_rows = [&](const std::string& run) {
    std::vector<nlohmann::json> out;
    std::istringstream in(read_file(dir / run / "metrics.jsonl"));
    for (std::string line; std::getline(in, line);) {
      const auto row = nlohmann::json::parse(line);
      if (row.contains("valid_rougeL")) out.push_back(row);
    }
    return out;
  };
  const auto one = generation_rows("one"), two = generation_rows("two");
  ASSERT_FALSE(one.empty());
  ASSERT_EQ(one.size(), two.size()) << "both stop early at the same step, or neither";
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(one[i]["step"], two[i]["step"]);
    EXPECT_EQ(one[i]["generate_records"], two[i]["generate_records"]);
    EXPECT_NEAR(one[i]["valid_rougeL"].get<double>(), two[i]["valid_rougeL"].get<double>(), 1e-9) << i;
    EXPECT_NEAR(one[i]["valid_meteor"].get<double>(), two[i]["valid_meteor"].get<double>(), 1e-9) << i;
  }
  const auto best_one = nlohmann::json::parse(read_file(dir / "one" / "best" / "best_metric.json"));
  const auto best_two = nlohmann::json::parse(read_file(dir / "two" / "best" / "best_metric.json"));
  EXPECT_EQ(best_one["step"], best_two["step"]);
  EXPECT_EQ(fs::exists(dir / "one" / "final"), fs::exists(dir / "two" / "final"));
}

// Launched by hand (the variables torchrun would set) so that the test holds both pids: rank 1 is
// killed with SIGKILL mid-run; rank 0 exits 1 with a line naming rank 1 within the timeout.
TEST(DistributedTrain, ALostRankStopsTheOthersWithItsName) {
  ScratchDir dir("dist-kill");
  ASSERT_EQ(run_percetrain(job(dir.path(), "probe", "--set train.max_steps=1")).status, 0);
  const int port = testing_util::free_port();
  const double timeout_s = 10;
  pid_t pids[2];
  for (int rank = 0; rank < 2; ++rank) {
    const std::string command = "RANK=" + std::to_string(rank) + " LOCAL_RANK=" + std::to_string(rank) +
                                " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " exec " +
                                PERCETRAIN_BINARY + " " +
                                job(dir.path(), "run", "--set train.max_steps=400 --set train.log_every=1 " +
                                                           std::string("--set train.distributed.timeout_s=") +
                                                           std::to_string(timeout_s)) +
                                " 2> " + (dir / ("err." + std::to_string(rank))).string();
    char* argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"), const_cast<char*>(command.c_str()), nullptr};
    ASSERT_EQ(posix_spawn(&pids[rank], "/bin/sh", nullptr, nullptr, argv, environ), 0);
  }
  // Wait for training to run (rank 0 logs every step), then kill rank 1.
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  while (seconds() < 60 && testing_util::read_file(dir / "run" / "metrics.jsonl").size() < 600)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(::kill(pids[1], SIGKILL), 0);
  const double killed_at = seconds();
  int status = 0;
  ::waitpid(pids[1], &status, 0);
  while (::waitpid(pids[0], &status, WNOHANG) == 0 && seconds() - killed_at < timeout_s + 20)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double took = seconds() - killed_at;
  if (::kill(pids[0], 0) == 0) {
    ::kill(pids[0], SIGKILL);
    FAIL() << "rank 0 still runs " << took << " s after rank 1 died";
  }
  const std::string error = read_file(dir / "err.0");
  ASSERT_TRUE(WIFEXITED(status)) << error;
  EXPECT_EQ(WEXITSTATUS(status), 1) << error;
  EXPECT_NE(error.find("rank 1"), std::string::npos) << error;
  EXPECT_LT(took, timeout_s + 5) << error;
  std::printf("rank 0 stopped %.2f s after rank 1 was killed: %s", took, error.substr(error.rfind("percetrain:")).c_str());
}

}  // namespace
}  // namespace percetrain
