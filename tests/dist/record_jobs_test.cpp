// `score` and `generate` on two ranks (Gloo on loopback, launched by torchrun) write the bytes one
// rank writes (each rank computes whole batches of the one-rank order, so every record is
// computed in the same batch and rounds the same), with per-user adapters too; a rank lost mid-job
// is named and ends the job non-zero, and --resume then continues each rank's part.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "percetrain/dist/record_shards.hpp"
#include "test_util.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace percetrain {
namespace {

using nlohmann::json;
using testing_util::read_file;
using testing_util::run_command;
using testing_util::run_percetrain;
using testing_util::ScratchDir;
using testing_util::source_dir;
using testing_util::write_file;

#define REQUIRE_TORCHRUN(var)                               \
  std::string why_not;                                      \
  const std::string var = testing_util::torchrun_command(&why_not); \
  if (var.empty()) GTEST_SKIP() << why_not

// Two ranks through torchrun on loopback at a port nothing listens on now (other tests may run
// torchrun at the same time, so not --standalone's fixed one).
testing_util::CommandResult two_ranks(const std::string& torchrun, const std::string& args) {
  return run_command("timeout -s KILL 120 " + torchrun + " --master_addr 127.0.0.1 --master_port " +
                     std::to_string(testing_util::free_port()) + testing_util::kTorchrunCommon + " " +
                     PERCETRAIN_BINARY + " " + args);
}

std::string data_file(const std::string& split) { return (source_dir() / "data" / "demo" / (split + ".jsonl")).string(); }

// A random model of the demo tokenizer in dir/name.
void make_model(const ScratchDir& dir, const std::string& name, const std::string& preset) {
  const auto r = run_percetrain("init-model --arch llama --preset " + preset + " --tokenizer " +
                                (source_dir() / "data" / "tokenizer").string() + " --out " + (dir / name).string());
  ASSERT_EQ(r.status, 0) << r.output;
}

std::string score_args(const ScratchDir& dir, const std::string& model, const std::string& out, const std::string& extra) {
  return "score --config " + (source_dir() / "configs" / "demo.json").string() + " --set model.path=" +
         (dir / model).string() + " --out " + (dir / out).string() + " " + extra;
}

// A generation job with sampling (temperature 1 on a random model draws at nearly every step).
std::string generate_args(const ScratchDir& dir, const std::string& model, const std::string& out,
                          const std::string& extra) {
  const json job = {
      {"model", {{"path", (dir / model).string()}}},
      {"tokenizer", {{"path", (source_dir() / "data" / "tokenizer").string()}}},
      {"data", {{"preset", "longlamp_product_review"}, {"retrieval", "bm25"}, {"top_k", 2}, {"max_length", 256}}},
      {"generate", {{"temperature", 1.0}, {"top_p", 0.95}, {"max_new_tokens", 12}, {"seed", 7}}}};
  write_file(dir / (model + "-job.json"), job.dump(2));
  return "generate --config " + (dir / (model + "-job.json")).string() + " --out " + (dir / out).string() + " " + extra;
}

// The summary without what depends on the run rather than the records (time and rank count).
json summary_numbers(const fs::path& file) {
  json s = json::parse(read_file(file));
  s.erase("tokens_per_s");
  s.erase("ranks");
  return s;
}

bool has_parts(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().find(".rank-") != std::string::npos) return true;
  return false;
}

// The split depends only on the costs: contiguous, every unit once, about equal cost per rank.
TEST(RecordShards, SplitIsContiguousAndBalancedByCost) {
  EXPECT_EQ(split_by_cost({1, 1, 1, 1}, 2), (std::vector<size_t>{0, 2, 4}));
  EXPECT_EQ(split_by_cost({10, 1, 1}, 2), (std::vector<size_t>{0, 1, 3}));
  EXPECT_EQ(split_by_cost({5}, 3), (std::vector<size_t>{0, 1, 1, 1}));  // more ranks than units: empty shares
  EXPECT_EQ(split_by_cost({}, 2), (std::vector<size_t>{0, 0, 0}));
  EXPECT_EQ(split_by_cost({3, 3, 3}, 1), (std::vector<size_t>{0, 3}));
  EXPECT_EQ(part_path("out/s.jsonl", 1, 2), "out/s.jsonl.rank-1-of-2");
  ScratchDir dir("record-shards");
  const std::string out = (dir / "s.jsonl").string();
  write_file(out + ".rank-0-of-3.tmp", "");
  write_file(dir / "s.jsonl.rank-x-of-2", "");  // not a part
  EXPECT_EQ(existing_parts(out), std::vector<std::string>{out + ".rank-0-of-3.tmp"});
  check_part_layout(out, 2, false);  // a fresh run ignores them
  EXPECT_TRUE(testing_util::throws_error([&] { check_part_layout(out, 2, true); },
                                         "was written by a run on 3 ranks; this run has 2"));
  fs::remove(out + ".rank-0-of-3.tmp");
  write_file(out + ".tmp", "");
  check_part_layout(out, 1, true);
  EXPECT_TRUE(testing_util::throws_error([&] { check_part_layout(out, 2, true); }, "was written by a run on one rank"));
}

TEST(DistributedRecordJobs, ScoreOnTwoRanksWritesTheBytesOfOneRank) {
  REQUIRE_TORCHRUN(torchrun);
  ScratchDir dir("dist-score");
  make_model(dir, "model", "tiny");
  // 96 records, micro-batches of 3 in windows of 64: the split falls inside a window.
  const std::string common = "--data " + data_file("train") + " --limit 96 --batch-size 3 --html-records 20 ";
  auto r = run_percetrain(score_args(dir, "model", "one/scores.jsonl", common + "--html " + (dir / "one/report.html").string()));
  ASSERT_EQ(r.status, 0) << r.output;
  r = two_ranks(torchrun, score_args(dir, "model", "two/scores.jsonl", common + "--html " + (dir / "two/report.html").string()));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("scored on 2 ranks"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(dir / "two/scores.jsonl"), read_file(dir / "one/scores.jsonl"));
  EXPECT_EQ(read_file(dir / "two/report.html"), read_file(dir / "one/report.html"));
  EXPECT_EQ(summary_numbers(dir / "two/scores.summary.json"), summary_numbers(dir / "one/scores.summary.json"));
  EXPECT_EQ(json::parse(read_file(dir / "two/scores.summary.json"))["ranks"], 2);
  EXPECT_FALSE(has_parts(dir / "two")) << "the merge removes the parts";
  // Only rank 0 prints the summary, over all records.
  size_t summaries = 0;
  for (size_t at = r.output.find("scored 96 records"); at != std::string::npos; at = r.output.find("scored 96 records", at + 1))
    ++summaries;
  EXPECT_EQ(summaries, 1u) << r.output;
}

TEST(DistributedRecordJobs, GenerateOnTwoRanksWritesTheBytesOfOneRankGreedyAndSampled) {
  REQUIRE_TORCHRUN(torchrun);
  ScratchDir dir("dist-generate");
  make_model(dir, "model", "tiny");
  for (const std::string sampling : {"--set generate.temperature=0", ""}) {
    const std::string common = "--data " + data_file("valid") + " --set generate.batch_size=3 " + sampling;
    auto r = run_percetrain(generate_args(dir, "model", "one.jsonl", common));
    ASSERT_EQ(r.status, 0) << r.output;
    r = two_ranks(torchrun, generate_args(dir, "model", "two.jsonl", common));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("wrote 32 predictions to " + (dir / "two.jsonl").string() + " (0 resumed, 32 decoded on 2 ranks)"),
              std::string::npos)
        << r.output;
    const std::string one = read_file(dir / "one.jsonl");
    EXPECT_EQ(std::count(one.begin(), one.end(), '\n'), 32);
    EXPECT_EQ(read_file(dir / "two.jsonl"), one) << (sampling.empty() ? "sampled" : "greedy");
    EXPECT_FALSE(has_parts(dir.path()));
    fs::remove(dir / "one.jsonl");
    fs::remove(dir / "two.jsonl");
  }
}

// Per-user adapters (three users trained, the others on the base): each rank swaps in the
// adapters of its stretch; scores and predictions equal one rank's.
TEST(DistributedRecordJobs, PerUserAdaptersOnTwoRanksGiveWhatOneRankGives) {
  REQUIRE_TORCHRUN(torchrun);
  ScratchDir dir("dist-adapters");
  auto r = run_percetrain("train --quiet --config " + (source_dir() / "configs" / "demo.json").string() +
                          " --set model.path=" + (dir / "model").string() + " --set output.dir=" +
                          (dir / "run").string() +
                          " --set data.max_records=24 --set train.epochs=1 --set train.save_every=0"
                          " --set lora.per_user=true --set lora.rank=4");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string adapters = " --adapters " + (dir / "run" / "adapters").string() + " ";
  const std::string score = "--data " + data_file("train") + " --limit 40 --batch-size 2" + adapters;
  r = run_percetrain(score_args(dir, "model", "one/scores.jsonl", score));
  ASSERT_EQ(r.status, 0) << r.output;
  r = two_ranks(torchrun, score_args(dir, "model", "two/scores.jsonl", score));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_file(dir / "two/scores.jsonl"), read_file(dir / "one/scores.jsonl"));
  const json summary = summary_numbers(dir / "two/scores.summary.json");
  EXPECT_EQ(summary, summary_numbers(dir / "one/scores.summary.json"));
  EXPECT_EQ(summary["records_without_adapter"], 16) << summary.dump();

  const std::string generate = "--data " + data_file("train") + " --limit 40 --set generate.batch_size=3" + adapters;
  r = run_percetrain(generate_args(dir, "model", "one.jsonl", generate));
  ASSERT_EQ(r.status, 0) << r.output;
  r = two_ranks(torchrun, generate_args(dir, "model", "two.jsonl", generate));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_file(dir / "two.jsonl"), read_file(dir / "one.jsonl"));
}

size_t lines_in(const fs::path& file) {
  const std::string text = read_file(file);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// Rank 1 is killed with SIGKILL once its part holds `after` records; rank 0 must exit 1 within the
// timeout with a line that names rank 1. Returns rank 0's stderr.
std::string kill_rank_1(const ScratchDir& dir, const std::string& args, const fs::path& rank1_part, double timeout_s) {
  pid_t pids[2];
  testing_util::start_two_ranks(dir, args + " --set train.distributed.timeout_s=" + std::to_string(timeout_s), pids);
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  while (seconds() < 50 && lines_in(rank1_part) < 2) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(::kill(pids[1], SIGKILL), 0);
  const double killed_at = seconds();
  int status = 0;
  ::waitpid(pids[1], &status, 0);
  while (::waitpid(pids[0], &status, WNOHANG) == 0 && seconds() - killed_at < timeout_s + 20)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double took = seconds() - killed_at;
  if (::kill(pids[0], 0) == 0) {
    ::kill(pids[0], SIGKILL);
    ::waitpid(pids[0], &status, 0);
    ADD_FAILURE() << "rank 0 still runs " << took << " s after rank 1 died";
    return "";
  }
  const std::string error = read_file(dir / "err.0");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << error;
  EXPECT_NE(error.find("rank 1"), std::string::npos) << error;
  EXPECT_LT(took, timeout_s + 5) << error;
  const size_t at = error.rfind("percetrain:");
  std::printf("rank 0 stopped %.2f s after rank 1 was killed: %s", took,
              at == std::string::npos ? error.c_str() : error.substr(at).c_str());
  return error;
}

// 128 records on a model large enough that a rank is still scoring when the other dies.
TEST(DistributedRecordJobs, ALostScoringRankIsNamedAndResumeContinuesEachPart) {
  REQUIRE_TORCHRUN(torchrun);
  ScratchDir dir("dist-score-kill");
  make_model(dir, "model", "small");
  const std::string common = "--data " + data_file("train") + " --limit 128 --batch-size 1";
  auto r = run_percetrain(score_args(dir, "model", "one/scores.jsonl", common + " --quiet"));
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string two = score_args(dir, "model", "two/scores.jsonl", common);
  kill_rank_1(dir, two, dir / "two" / "scores.jsonl.rank-1-of-2.tmp", 10);
  ASSERT_FALSE(fs::exists(dir / "two" / "scores.jsonl"));
  ASSERT_GE(lines_in(dir / "two" / "scores.jsonl.rank-1-of-2.tmp"), 2u);
  // One rank cannot continue what two wrote.
  r = run_percetrain(two + " --resume");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("was written by a run on 2 ranks; this run has 1"), std::string::npos) << r.output;
  r = two_ranks(torchrun, two + " --resume");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("rank 1: resuming: "), std::string::npos) << r.output;
  EXPECT_EQ(read_file(dir / "two/scores.jsonl"), read_file(dir / "one/scores.jsonl"));
  EXPECT_EQ(summary_numbers(dir / "two/scores.summary.json")["records"],
            summary_numbers(dir / "one/scores.summary.json")["records"]);
  EXPECT_FALSE(has_parts(dir / "two"));
}

TEST(DistributedRecordJobs, ALostGeneratingRankIsNamedAndResumeContinuesEachPart) {
  REQUIRE_TORCHRUN(torchrun);
  ScratchDir dir("dist-generate-kill");
  make_model(dir, "model", "small");
  const std::string common = "--data " + data_file("train") + " --limit 128 --set generate.batch_size=1";
  auto r = run_percetrain(generate_args(dir, "model", "one.jsonl", common));
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string two = generate_args(dir, "model", "two.jsonl", common);
  kill_rank_1(dir, two, dir / "two.jsonl.rank-1-of-2.tmp", 10);
  ASSERT_FALSE(fs::exists(dir / "two.jsonl"));
  r = two_ranks(torchrun, two);  // an unfinished part is not thrown away without --resume
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("exists: an earlier run did not finish"), std::string::npos) << r.output;
  r = two_ranks(torchrun, two + " --resume");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(" resumed, "), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("(0 resumed"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(dir / "two.jsonl"), read_file(dir / "one.jsonl"));
  EXPECT_FALSE(has_parts(dir.path()));
}

}  // namespace
}  // namespace percetrain
