// PerCE and the baseline objectives; weights are always detached (no gradient through w).
#include "percetrain/objective/objective.hpp"

#include <torch/torch.h>


namespace percetrain {

torch::Tensor personal_influence_ratio(const torch::Tensor& logp_personalised,
                                       const torch::Tensor& logp_counterfactual) {
  return (logp_personalised.detach() - logp_counterfactual.detach());
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

class PerCE final : public Objective {
 public:
  PerCE(double clip_min, double clip_max) : clip_min_(clip_min), clip_max_(clip_max) {}
  std::string name() const override { return "perce"; }
  bool needs_counterfactual() const override { return true; }
  ObjectiveTerms terms(const ResponseTokens& t) const override {
    auto pir = personal_influence_ratio(t.logp_personalised, t.logp_counterfactual);
    auto weights = pir.clamp(clip_min_, clip_max_);
    return {weights * -t.logp_personalised, weights, pir};
  }

 private:
  double clip_min_, clip_max_;
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

}  // namespace

std::unique_ptr<Objective> make_objective(const ObjectiveSection& c) {
  switch (c.name) {
    case ObjectiveKind::kCe: return std::make_unique<CrossEntropy>();
    case ObjectiveKind::kPerce: return std::make_unique<PerCE>(c.clip_min, c.clip_max);
    case ObjectiveKind::kLossce: return std::make_unique<LossCE>(c.clip_min, c.clip_max);
    case ObjectiveKind::kEntce: return std::make_unique<EntropyCE>(c.clip_min, c.clip_max);
  }
  return nullptr;  // unreachable: every kind is handled above
}

}  // namespace percetrain
