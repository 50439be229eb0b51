// End to end on the demo set: train a tiny model briefly with PerCE, then measure how PerContrast
// ranks the ground-truth personal tokens of held-out users (AUROC) and their mean log-prob.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "percetrain/config/job_config.hpp"
#include "percetrain/data/dataset.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/train/trainer.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace percetrain;

namespace {

// Probability that a random positive scores above a random negative (ties count half).
double auroc(const std::vector<std::pair<double, bool>>& scored) {
  std::vector<std::pair<double, bool>> sorted = scored;
  std::sort(sorted.begin(), sorted.end());
  double positives = 0, negatives = 0, rank_sum = 0;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j < sorted.size() && sorted[j].first == sorted[i].first) ++j;
    const double average_rank = (i + 1 + j) / 2.0;
    for (size_t k = i; k < j; ++k)
      if (sorted[k].second) rank_sum += average_rank, ++positives;
      else ++negatives;
    i = j;
  }
  if (positives == 0 || negatives == 0) return 0.5;
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

TEST(Auroc, HandComputedValues) {
  EXPECT_DOUBLE_EQ(auroc({{0.1, false}, {0.2, false}, {0.9, true}}), 1.0);
  EXPECT_DOUBLE_EQ(auroc({{0.9, false}, {0.2, true}}), 0.0);
  EXPECT_DOUBLE_EQ(auroc({{0.5, false}, {0.5, true}}), 0.5);
  // positives {0.4, 0.8}, negatives {0.3, 0.6}: pairs won 1 + 2 = 3 of 4.
  EXPECT_DOUBLE_EQ(auroc({{0.4, true}, {0.8, true}, {0.3, false}, {0.6, false}}), 0.75);
}

TEST(EndToEnd, PerContrastScoresHeldOutUsersTokenByToken) {
  testing_util::ScratchDir dir;
  // PERCETRAIN_E2E_MODEL scores an already trained model instead (e.g. build/demo/run/final after
  // scripts/demo.sh) with the demo config as it is; that is how the README's numbers are measured.
  const char* trained = std::getenv("PERCETRAIN_E2E_MODEL");
  std::vector<std::string> overrides = {"model.path=" + (dir / "model").string(), "output.dir=" + (dir / "run").string()};
  if (!trained)
    overrides.insert(overrides.end(), {"data.max_length=256", "train.epochs=1", "train.max_steps=40", "train.log_every=100"});
  JobConfig config = load_job_config((testing_util::source_dir() / "configs" / "demo.json").string(), overrides);
  TrainOptions quiet;
  quiet.progress = false;
  ensure_model_folder(config);
  auto tokenizer = load_tokenizer(config.tokenizer.path);
  DatasetStats stats;
  auto train = load_paired_examples(config.data, config.data.train_file, "", *tokenizer, &stats);
  auto test = load_paired_examples(config.data, config.data.test_file, "", *tokenizer, &stats);
  if (!trained) train_on_examples(config, quiet, train, {}, config.tokenizer.path, 0);
  auto loaded = load_causal_lm(trained ? trained : (dir / "run" / "final").string(), torch::kCPU, torch::kFloat32);
  ObjectiveSection perce;
  auto objective = make_objective(perce);
  std::vector<std::pair<double, bool>> scored;
  double personal_logp = 0, other_logp = 0;
  int64_t personal_tokens = 0, other_tokens = 0;
  torch::InferenceMode inference;
  for (size_t i = 0; i < test.size(); ++i) {
    auto batch = collate_paired(test, {i}, 0, torch::kCPU, true);
    auto pass = run_micro_batch(*loaded.model, *objective, batch, 256);
    auto pir = pass.terms.pir;
    auto logp = pass.tokens.logp_personalised;
    const auto spans = response_token_spans(*tokenizer, test[i]);
    const int64_t n = pir.size(0);
    ASSERT_EQ(n, static_cast<int64_t>(spans.size()));
    ASSERT_TRUE(pir.isfinite().all().item<bool>());
    if (test[i].profile_items == 0) EXPECT_EQ(pir.abs().max().item<double>(), 0.0) << "no profile, no PIR";
    for (int64_t k = 0; k < n; ++k) {
      if (spans[k].first == spans[k].second) continue;  // EOS
      bool personal = false;
      for (const auto& s : test[i].personal_spans)
        personal |= spans[k].first < s.second && s.first < spans[k].second;
      scored.emplace_back(pir[k].item<double>(), personal);
      (personal ? personal_logp : other_logp) += logp[k].item<double>();
      ++(personal ? personal_tokens : other_tokens);
    }
  }
  ASSERT_GT(personal_tokens, 100);
  ASSERT_GT(other_tokens, 100);
  const double value = auroc(scored);
  RecordProperty("auroc", std::to_string(value));
  // At this scale PerContrast does not (yet) single out the personal tokens: measured AUROC is
  // about 0.4 after the 40 steps below and after the full demo run (README, "End-to-end
  // evidence"). The test therefore checks the measurement itself, not a result it cannot show.
  std::cout << "held-out users: PerContrast AUROC " << value << " over " << scored.size()
            << " tokens; mean log P personal " << personal_logp / personal_tokens << " ("
            << personal_tokens << " tokens), other " << other_logp / other_tokens << "\n";
  EXPECT_GE(value, 0.0);
  EXPECT_LE(value, 1.0);
}

}  // namespace
