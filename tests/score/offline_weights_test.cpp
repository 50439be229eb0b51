// From score's output to fixed offline weights: write_weighted_records joins the weights back into
// the records, and training data read from them carries exactly the weights PerCE gave.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "percetrain/config/job_config.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/pass/paired_pass.hpp"
#include "percetrain/score/offline_weights.hpp"
#include "percetrain/score/scorer.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace percetrain {
namespace {

using testing_util::ScratchDir;
using testing_util::source_dir;

std::vector<json> read_weighted_jsonl(const fs::path& path) {
  std::ifstream in(path);
  std::vector<json> out;
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
  return out;
}

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string weights_score_line(const std::string& id, const std::vector<float>& weights) {
  RecordScore r;
  r.id = id;
  r.output = "x";
  for (float w : weights) {
    TokenScore t;
    t.weight = w;
    r.tokens.push_back(t);
  }
  return record_to_json_line(r);
}

TEST(OfflineWeights, JoinedByIdIntoJsonlAndJsonArrayRecordsKeepingEveryField) {
  ScratchDir dir;
  write_text(dir / "scores.jsonl", weights_score_line("a", {0.8f, 1.25f}) + "\n" + weights_score_line("7", {5.0f}) + "\n");
  const std::string a = R"({"id": "a", "input": "i", "output": "o", "profile": [], "user": "u1", "weighted_spans": [[0, 1, 2.0]]})";
  const std::string b = R"({"id": "b", "input": "i", "output": "o", "profile": []})";
  const std::string c = R"({"id": 7, "input": "i", "output": "o", "profile": []})";
  write_text(dir / "data.jsonl", a + "\n" + b + "\n\n" + c + "\n");
  write_text(dir / "data.json", "[" + a + ",\n" + b + ", " + c + "]");
  for (const std::string name : {"data.jsonl", "data.json"}) {
    const auto result = write_weighted_records((dir / name).string(), (dir / "scores.jsonl").string(),
                                               (dir / "weighted.jsonl").string());
    EXPECT_EQ(result.records, 3) << name;
    EXPECT_EQ(result.weighted, 2) << name;
    const auto records = read_weighted_jsonl(dir / "weighted.jsonl");
    ASSERT_EQ(records.size(), 3u);
    EXPECT_EQ(records[0]["user"], "u1") << "other fields are kept";
    EXPECT_FALSE(records[0].contains("weighted_spans")) << "a record carries one kind of weights";
    ASSERT_EQ(records[0]["token_weights"].size(), 2u);
    EXPECT_EQ(static_cast<float>(records[0]["token_weights"][0].get<double>()), 0.8f);
    EXPECT_EQ(static_cast<float>(records[0]["token_weights"][1].get<double>()), 1.25f);
    EXPECT_FALSE(records[1].contains("token_weights")) << "no score line: copied unchanged";
    EXPECT_EQ(records[2]["token_weights"], json::array({5.0})) << "numeric ids join as their text";
  }
  write_text(dir / "no-id.jsonl", R"({"input": "i", "output": "o", "profile": []})" "\n");
  EXPECT_TRUE(testing_util::throws_error(
      [&] {
        write_weighted_records((dir / "no-id.jsonl").string(), (dir / "scores.jsonl").string(),
                               (dir / "w.jsonl").string());
      },
      "no-id.jsonl:1: id: is missing"));
}

// score -> weighted records -> weights_from_data: at the scoring model, the fixed weights are the
// PerCE weights the online objective computes.
TEST(OfflineWeights, ScoreThenWeightsFromDataReproducesThePerceWeights) {
  ScratchDir dir;
  JobConfig config = load_job_config((source_dir() / "configs" / "demo.json").string());
  config.model.path = (dir / "model").string();
  config.data.max_records = 4;
  prepare_model_folder(config.model, tokenizer_path(config), true);
  ScoreOptions options;
  options.out = (dir / "scores.jsonl").string();
  options.progress = false;
  const auto scored = run_scoring(config, config.data.test_file, "", options);
  ASSERT_TRUE(scored.finished);
  const auto written = write_weighted_records(config.data.test_file, options.out, (dir / "weighted.jsonl").string());
  EXPECT_EQ(written.weighted, 4);
  EXPECT_EQ(written.records, 32) << "the records past --limit are copied without weights";

  auto tokenizer = load_tokenizer(config.tokenizer.path);
  auto examples = load_paired_examples(config.data, (dir / "weighted.jsonl").string(), "", *tokenizer, nullptr);
  ASSERT_EQ(examples.size(), 4u);
  auto loaded = load_causal_lm(config.model.path, torch::kCPU, torch::kFloat);
  ObjectiveSection from_data;
  from_data.name = ObjectiveKind::kWeightsFromData;
  from_data.data_weight_default = -1.0;  // would show where a token lacked its weight
  ObjectiveSection perce;  // the demo's clip bounds are the defaults
  torch::InferenceMode inference;
  // The micro-batch score ran (same rows, order and padding), so the numbers agree to the bit.
  const auto plan = scoring_plan(examples, 2 * config.train.micro_batch_size, 64);
  ASSERT_EQ(plan.size(), 1u);
  const int64_t pad_id = tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;
  auto batch = collate_paired(examples, plan[0], pad_id, torch::kCPU, true);
  const auto fixed = run_paired_pass(*loaded.model, *make_objective(from_data), batch, 0, true).terms.weights;
  const auto online = run_paired_pass(*loaded.model, *make_objective(perce), batch, 0, true).terms.weights;
  ASSERT_EQ(fixed.numel(), batch.response_tokens);
  EXPECT_TRUE(torch::equal(fixed, online)) << "max difference " << (fixed - online).abs().max().item<double>();
}

}  // namespace
}  // namespace percetrain
