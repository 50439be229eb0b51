// `generate` with sampling through the binary: the predictions do not depend on generate.batch_size,
// nor on a resume that continues with another batch size (each record draws from its own stream).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.hpp"

namespace percetrain {
namespace {

using namespace testing_util;
namespace fs = std::filesystem;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(GenerateBatchInvariance, SampledPredictionsDoNotDependOnTheBatchSizeOrAResume) {
  ScratchDir dir("generate-batches");
  const std::string tokenizer = (source_dir() / "data" / "tokenizer").string();
  auto r = run_percetrain("init-model --arch qwen3 --preset tiny --tokenizer " + tokenizer + " --out " +
                          (dir / "m").string());
  ASSERT_EQ(r.status, 0) << r.output;
  // Temperature 1 on a random model: nearly uniform over the vocabulary, so every step draws.
  const nlohmann::json job = {
      {"model", {{"path", (dir / "m").string()}}},
      {"tokenizer", {{"path", tokenizer}}},
      {"data", {{"preset", "longlamp_product_review"}, {"retrieval", "bm25"}, {"top_k", 2}, {"max_length", 256}}},
      {"generate", {{"temperature", 1.0}, {"top_p", 0.95}, {"max_new_tokens", 12}, {"seed", 7}}}};
  write_file(dir / "job.json", job.dump(2));
  const std::string data = (source_dir() / "data" / "demo" / "valid.jsonl").string();
  auto generate = [&](int batch, const std::string& out, const std::string& extra = "") {
    return run_percetrain("generate --config " + (dir / "job.json").string() + " --data " + data + " --out " +
                          (dir / out).string() + " --set generate.batch_size=" + std::to_string(batch) + " " + extra);
  };
  r = generate(1, "b1.jsonl");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto one = lines_of(read_file(dir / "b1.jsonl"));
  ASSERT_EQ(one.size(), 32u);
  for (int batch : {5, 8}) {
    r = generate(batch, "b" + std::to_string(batch) + ".jsonl");
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(lines_of(read_file(dir / ("b" + std::to_string(batch) + ".jsonl"))), one) << "batch " << batch;
  }
  // Interrupted after 11 records of batch 1 (OUT.tmp holds their lines), resumed with batch 3.
  std::string partial;
  for (size_t i = 0; i < 11; ++i) partial += one[i] + "\n";
  write_file(dir / "resumed.jsonl.tmp", partial);
  r = generate(3, "resumed.jsonl", "--resume");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(lines_of(read_file(dir / "resumed.jsonl")), one);
  // Not degenerate: another seed samples other text.
  r = generate(8, "seed8.jsonl", "--set generate.seed=8");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(lines_of(read_file(dir / "seed8.jsonl")), one);
}

}  // namespace
}  // namespace percetrain
