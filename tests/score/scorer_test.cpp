// `score` against two plain forward passes per record, and byte-identical resume. (The
// demo's personal spans after training are checked in tests/train/end_to_end_test.cpp.)
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "percetrain/config/job_config.hpp"
#include "percetrain/data/pairing.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/score/scorer.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace percetrain {
namespace {

using testing_util::read_file;
using testing_util::ScratchDir;
using testing_util::source_dir;

struct Fixture {
  ScratchDir dir{"percetrain-score"};
  JobConfig config;
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<PairedExample> examples;
  std::vector<PairDetail> details;

  explicit Fixture(int64_t records, const std::string& split = "test") {
    config = load_job_config((source_dir() / "configs" / "demo.json").string());
    config.model.path = (dir / "model").string();
    config.output.dir = (dir / "run").string();
    config.data.max_records = records;
    tokenizer = load_tokenizer(config.tokenizer.path);
    const std::string file = split == "test" ? config.data.test_file : config.data.train_file;
    examples = load_paired_examples(config.data, file, "", *tokenizer, nullptr, &details);
  }
  LoadedModel model() {
    prepare_model_folder(config.model, tokenizer_path(config), true);
    return load_causal_lm(config.model.path, torch::kCPU, torch::kFloat);
  }
};

// Each record on its own, unpadded, through two plain forward passes of the model: log P of every
// response token with and without the profile, PIR = their difference, weight = clip(PIR, 0.8, 5).
// score batches records (padded, sorted by length) through the paired pass; both must agree.
TEST(Score, EqualsTwoPlainForwardPassesPerRecord) {
  Fixture f(6);
  ASSERT_EQ(f.examples.size(), 6u);
  auto loaded = f.model();
  auto& model = *loaded.model;
  model.eval();
  auto response_logprobs = [&](const std::vector<int32_t>& ids, int64_t scored) {
    torch::InferenceMode inference;
    const auto T = static_cast<int64_t>(ids.size());
    auto input = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).view({1, T});
    auto lp = model.next_token_logprobs(input, torch::ones({1, T}, torch::kLong))[0];  // [T - 1]
    return lp.slice(0, T - 1 - scored).contiguous();  // the last `scored` targets
  };
  double max_diff = 0.0;
  int64_t tokens = 0;
  for (const auto& micro : scoring_plan(f.examples, 4, 64)) {
    const auto scores = score_micro_batch(model, *f.tokenizer, f.config, f.examples, &f.details, micro);
    ASSERT_EQ(scores.size(), micro.size());
    for (size_t row = 0; row < micro.size(); ++row) {
      const PairedExample& e = f.examples[micro[row]];
      EXPECT_EQ(scores[row].id, e.id);
      const int64_t scored = scored_response_tokens(e);
      ASSERT_EQ(static_cast<int64_t>(scores[row].tokens.size()), scored);
      const auto with = response_logprobs(e.personalised, scored);
      const auto without = response_logprobs(e.counterfactual, scored);
      for (int64_t k = 0; k < scored; ++k) {
        const auto& t = scores[row].tokens[k];
        EXPECT_EQ(t.id, e.personalised[e.personalised.size() - scored + k]);
        const double pir = with[k].item<double>() - without[k].item<double>();
        max_diff = std::max({max_diff, std::abs(t.logp_with - with[k].item<double>()),
                             std::abs(t.logp_without - without[k].item<double>()), std::abs(t.pir - pir),
                             std::abs(t.weight - std::clamp(pir, 0.8, 5.0))});
        ++tokens;
      }
    }
  }
  EXPECT_GT(tokens, 100);
  // Batched and padded vs one unpadded sequence: the same maths in another order (fp32).
  EXPECT_LE(max_diff, 2e-5);
  std::cout << "max |score - plain forward passes| = " << max_diff << " over " << tokens << " tokens\n";
}

TEST(Score, ResumedRunWritesTheSameBytesAsAnUninterruptedOne) {
  Fixture f(9);
  auto loaded = f.model();
  ScoreOptions o;
  o.progress = false;
  o.micro_batch_size = 2;
  o.window = 4;  // several windows; the interruption falls inside one
  o.out = (f.dir / "a" / "scores.jsonl").string();
  o.html = (f.dir / "a" / "report.html").string();
  o.html_records = 3;
  const auto full = score_examples(*loaded.model, *f.tokenizer, f.config, f.examples, f.details, o);
  ASSERT_TRUE(full.finished);
  EXPECT_EQ(full.records, 9);
  EXPECT_TRUE(fs::exists(f.dir / "a" / "scores.summary.json"));
  EXPECT_FALSE(fs::exists(o.out + ".tmp"));
  const std::string html = read_file(o.html);
  EXPECT_NE(html.find("Showing the first 3 of 9 records"), std::string::npos);

  ScoreOptions b = o;
  b.out = (f.dir / "b" / "scores.jsonl").string();
  b.html.clear();
  b.stop_after_records = 5;
  const auto part = score_examples(*loaded.model, *f.tokenizer, f.config, f.examples, f.details, b);
  ASSERT_FALSE(part.finished);
  ASSERT_FALSE(fs::exists(b.out));
  {  // the interruption also left half a line
    std::ofstream tmp(b.out + ".tmp", std::ios::binary | std::ios::app);
    tmp << "{\"id\":\"" << f.examples[5].id << "\",\"mean_pir\":0.1";
  }
  b.stop_after_records = 0;
  b.resume = true;
  const auto rest = score_examples(*loaded.model, *f.tokenizer, f.config, f.examples, f.details, b);
  ASSERT_TRUE(rest.finished);
  EXPECT_EQ(rest.scored_now, 4);
  EXPECT_EQ(read_file(b.out), read_file(o.out));

  // A temporary file from other data is refused, not silently mixed in.
  {
    std::ofstream tmp(b.out + ".tmp", std::ios::binary);
    tmp << "{\"id\":\"someone-else\"}\n";
  }
  EXPECT_THROW(score_examples(*loaded.model, *f.tokenizer, f.config, f.examples, f.details, b), Error);
}


}  // namespace
}  // namespace percetrain
