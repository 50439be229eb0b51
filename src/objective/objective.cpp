// PerCE and the baseline objectives; weights are always detached (no gradient through w).
#include "percetrain/objective/objective.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "percetrain/util/error.hpp"

namespace percetrain {

torch::Tensor personal_influence_ratio(const torch::Tensor& logp_personalised,
                                       const torch::Tensor& logp_counterfactual) {
  return (logp_personalised.detach() - logp_counterfactual.detach());
}

torch::Tensor carry_to_word(const torch::Tensor& pir, const torch::Tensor& word_head) {
  if (!word_head.defined() || word_head.size(0) != pir.size(0))
    fail("objective.pir_scope", "word scope needs the word boundaries of every response token, and the batch has none",
         "this is a bug in the caller: examples need their word heads (attach_word_heads)");
  return pir.index_select(0, word_head);
}

torch::Tensor top_excess_weights(const torch::Tensor& excess_loss, const torch::Tensor& sequence,
                                 int64_t num_sequences, double keep_ratio) {
  const auto excess = excess_loss.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const auto rows = sequence.to(torch::kCPU).contiguous();
  const int64_t N = excess.size(0);
  const double* e = excess.data_ptr<double>();
  const int64_t* row = rows.data_ptr<int64_t>();
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(std::max<int64_t>(0, num_sequences)));
  for (int64_t i = 0; i < N; ++i) members.at(static_cast<size_t>(row[i])).push_back(i);
  std::vector<double> weights(static_cast<size_t>(N), 0.0);
  for (auto& m : members) {
    if (m.empty()) continue;
    const auto n = static_cast<int64_t>(m.size());
    // The small epsilon keeps 0.6 * 5 = 3.0000000000000004 from rounding up to 4.
    const int64_t keep = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(keep_ratio * n - 1e-9)), 1, n);
    std::stable_sort(m.begin(), m.end(), [&](int64_t a, int64_t b) { return e[a] > e[b]; });
    for (int64_t k = 0; k < keep; ++k) weights[static_cast<size_t>(m[k])] = static_cast<double>(n) / keep;
  }
  return torch::tensor(weights, torch::kFloat64).to(excess_loss.device(), excess_loss.scalar_type());
}

torch::Tensor normalise_per_sequence(const torch::Tensor& values, const torch::Tensor& sequence,
                                     int64_t num_sequences) {
  auto sums = torch::zeros({num_sequences}, values.options()).index_add_(0, sequence, values);
  auto counts = torch::zeros({num_sequences}, values.options())
                    .index_add_(0, sequence, torch::ones_like(values));
  auto means = sums / counts.clamp_min(1);
  auto per_token_mean = means.index_select(0, sequence);
  return torch::where(per_token_mean > 0, values / per_token_mean, torch::ones_like(values));
}

torch::Tensor normalisation_scale(Normalization mode, const torch::Tensor& sequence,
                                  int64_t num_sequences, int64_t step_tokens, int64_t step_sequences) {
  auto options = torch::TensorOptions().dtype(torch::kFloat64).device(sequence.device());
  if (mode == Normalization::kTokens)
    return torch::full({sequence.size(0)}, 1.0 / std::max<int64_t>(1, step_tokens), options);
  auto counts = torch::zeros({num_sequences}, options).index_add_(0, sequence, torch::ones({sequence.size(0)}, options));
  return 1.0 / (counts.index_select(0, sequence) * std::max<int64_t>(1, step_sequences));
}

namespace {

class CrossEntropy final : public Objective {
 public:
  std::string name() const override { return "ce"; }
  ObjectiveTerms terms(const ResponseTokens& t) const override {
    auto weights = torch::ones_like(t.logp_personalised).detach();
    return {-t.logp_personalised, weights, torch::Tensor()};
  }
};

// With pir_scope word, every piece of a word takes the PIR of the word's first piece; `pir` is
// then that carried PIR, the one the weights are made from.
class PerCE final : public Objective {
 public:
  PerCE(double clip_min, double clip_max, PirScope scope) : clip_min_(clip_min), clip_max_(clip_max), scope_(scope) {}
  std::string name() const override { return "perce"; }
  bool needs_counterfactual() const override { return true; }
  ObjectiveTerms terms(const ResponseTokens& t) const override {
    auto pir = personal_influence_ratio(t.logp_personalised, t.logp_counterfactual);
    if (scope_ == PirScope::kWord) pir = carry_to_word(pir, t.word_head);
    auto weights = pir.clamp(clip_min_, clip_max_);
    return {weights * -t.logp_personalised, weights, pir};
  }

 private:
  double clip_min_, clip_max_;
  PirScope scope_;
};

// Rho-1-style: tokens the model currently finds hard weigh more (loss / the sequence's mean loss).
class LossCE final : public Objective {
 public:
  LossCE(double clip_min, double clip_max) : clip_min_(clip_min), clip_max_(clip_max) {}
  std::string name() const override { return "lossce"; }
  ObjectiveTerms terms(const ResponseTokens& t) const override {
    auto token_loss = -t.logp_personalised.detach();
    auto weights = normalise_per_sequence(token_loss, t.sequence, t.num_sequences).clamp(clip_min_, clip_max_);
    return {weights * -t.logp_personalised, weights, torch::Tensor()};
  }

 private:
  double clip_min_, clip_max_;
};

// Tokens where the model's predictive distribution is uncertain weigh more.
class EntropyCE final : public Objective {
 public:
  EntropyCE(double clip_min, double clip_max) : clip_min_(clip_min), clip_max_(clip_max) {}
  std::string name() const override { return "entce"; }
  bool needs_entropy() const override { return true; }
  ObjectiveTerms terms(const ResponseTokens& t) const override {
    auto weights = normalise_per_sequence(t.entropy.detach(), t.sequence, t.num_sequences).clamp(clip_min_, clip_max_);
    return {weights * -t.logp_personalised, weights, torch::Tensor()};
  }

 private:
  double clip_min_, clip_max_;
};

// DFT (Wu et al. 2025, "On the Generalization of SFT"), as TRL's loss_type "dft", LLaMA-Factory's
// use_dft_loss and axolotl's enable_dft_loss ship it: each token's CE times its own probability
// p(y_i) = exp(log p), detached; no clipping; normalised like every objective here.
class Dft final : public Objective {
 public:
  std::string name() const override { return "dft"; }
  ObjectiveTerms terms(const ResponseTokens& t) const override {
    auto weights = t.logp_personalised.detach().exp();
    return {weights * -t.logp_personalised, weights, torch::Tensor()};
  }
};

// Rho-1's selective language modelling: per sequence, only the tokens whose loss exceeds the
// frozen reference model's the most train (excess = loss - reference loss = log P_ref - log P).
class Rho1 final : public Objective {
 public:
  explicit Rho1(double keep_ratio) : keep_ratio_(keep_ratio) {}
  std::string name() const override { return "rho1"; }
  bool needs_reference() const override { return true; }
  ObjectiveTerms terms(const ResponseTokens& t) const override {
    if (!t.logp_reference.defined() || t.logp_reference.size(0) != t.logp_personalised.size(0))
      fail("objective.rho1", "needs the reference model's log-probs of every response token",
           "this is a bug in the caller: run the paired pass with objective.reference_model loaded");
    auto excess = t.logp_reference.detach() - t.logp_personalised.detach();
    auto weights = top_excess_weights(excess, t.sequence, t.num_sequences, keep_ratio_);
    return {weights * -t.logp_personalised, weights, torch::Tensor()};
  }

 private:
  double keep_ratio_;
};

// Fixed weights from the records (token_weights / weighted_spans); tokens without one take the
// configured default.
class WeightsFromData final : public Objective {
 public:
  explicit WeightsFromData(double default_weight) : default_(default_weight) {}
  std::string name() const override { return "weights_from_data"; }
  ObjectiveTerms terms(const ResponseTokens& t) const override {
    auto fallback = torch::full_like(t.logp_personalised, default_).detach();
    auto weights = t.data_weights.defined()
                       ? torch::where(torch::isnan(t.data_weights), fallback,
                                      t.data_weights.to(fallback.scalar_type()))
                       : fallback;
    return {weights * -t.logp_personalised, weights, torch::Tensor()};
  }

 private:
  double default_;
};

}  // namespace

std::unique_ptr<Objective> make_objective(const ObjectiveSection& c) {
  switch (c.name) {
    case ObjectiveKind::kCe: return std::make_unique<CrossEntropy>();
    case ObjectiveKind::kPerce: return std::make_unique<PerCE>(c.clip_min, c.clip_max, c.pir_scope);
    case ObjectiveKind::kDft: return std::make_unique<Dft>();
    case ObjectiveKind::kRho1: return std::make_unique<Rho1>(c.rho1_keep_ratio);
    case ObjectiveKind::kWeightsFromData: return std::make_unique<WeightsFromData>(c.data_weight_default);
    case ObjectiveKind::kLossce: return std::make_unique<LossCE>(c.clip_min, c.clip_max);
    case ObjectiveKind::kEntce: return std::make_unique<EntropyCE>(c.clip_min, c.clip_max);
  }
  return nullptr;  // unreachable: every kind is handled above
}

}  // namespace percetrain
