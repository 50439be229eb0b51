// `score` against the training objective on the same batches, and byte-identical resume. (The
// demo's personal spans after training are checked in tests/train/end_to_end_test.cpp.)
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "percetrain/config/job_config.hpp"
#include "percetrain/data/pairing.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/score/scorer.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/train/trainer.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;

namespace percetrain {
namespace {

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
    ensure_model_folder(config);
    return load_causal_lm(config.model.path, torch::kCPU, torch::kFloat);
  }
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Score, EqualsWhatTheTrainingObjectiveComputesForTheSameBatch) {
  Fixture f(6);
  ASSERT_EQ(f.examples.size(), 6u);
  auto loaded = f.model();
  auto& model = *loaded.model;
  auto perce = make_objective(f.config.objective);  // demo.json trains with perce
  ASSERT_EQ(perce->name(), "perce");
  double max_diff = 0.0;
  for (const auto& micro : scoring_plan(f.examples, 4, 64)) {
    const auto scores = score_micro_batch(model, *f.tokenizer, f.config, f.examples, &f.details, micro);
    // The training step: grad mode on, the batch collated as train_on_examples does.
    model.train();
    auto batch = collate_paired(f.examples, micro, 0, torch::kCPU, true);
    auto pass = run_micro_batch(model, *perce, batch, f.config.objective.chunk_tokens);
    ASSERT_TRUE(pass.tokens.logp_personalised.requires_grad());
    const auto with = pass.tokens.logp_personalised.detach(), without = pass.tokens.logp_counterfactual;
    const auto pir = pass.terms.pir, weight = pass.terms.weights;
    int64_t c = 0;
    ASSERT_EQ(scores.size(), micro.size());
    for (size_t row = 0; row < micro.size(); ++row) {
      EXPECT_EQ(scores[row].id, f.examples[micro[row]].id);
      EXPECT_EQ(static_cast<int64_t>(scores[row].tokens.size()), scored_response_tokens(f.examples[micro[row]]));
      for (const auto& t : scores[row].tokens) {
        max_diff = std::max({max_diff, std::abs(t.logp_with - with[c].item<double>()),
                             std::abs(t.logp_without - without[c].item<double>()),
                             std::abs(t.pir - pir[c].item<double>()), std::abs(t.weight - weight[c].item<double>())});
        EXPECT_FLOAT_EQ(t.weight, std::clamp(t.pir, 0.8f, 5.0f));
        ++c;
      }
    }
    EXPECT_EQ(c, with.size(0));
  }
  EXPECT_LE(max_diff, 1e-6);
  std::cout << "max |score - training| = " << max_diff << "\n";
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
