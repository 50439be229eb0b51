// Objectives: weight formulas, detachment, float64 finite-difference gradients through a model,
// and finite losses on degenerate inputs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "percetrain/model/decoder.hpp"
#include "percetrain/objective/objective.hpp"

using namespace percetrain;

namespace {

ObjectiveSection section(const std::string& name) {
  ObjectiveSection s;
  if (!enum_from_name(name, &s.name)) ADD_FAILURE() << "no objective " << name;
  return s;
}

TEST(Objectives, PerceWeightsArePirClippedToTheBoundsAndDetached) {
  auto with = torch::tensor({-1.0, -2.0, -3.0, -0.5}, torch::requires_grad());
  auto without = torch::tensor({-1.5, -2.0, -9.0, -0.1});
  ResponseTokens t{with, without, {}, torch::zeros({4}, torch::kLong), 1};
  auto terms = make_objective(section("perce"))->terms(t);
  // PIR = 0.5, 0, 6, -0.4 -> clip to [0.8, 5]
  EXPECT_TRUE(torch::allclose(terms.pir, torch::tensor({0.5, 0.0, 6.0, -0.4}).to(terms.pir.dtype())));
  EXPECT_TRUE(torch::allclose(terms.weights, torch::tensor({0.8, 0.8, 5.0, 0.8}).to(terms.weights.dtype())));
  EXPECT_FALSE(terms.weights.requires_grad());
  terms.token_loss.sum().backward();
  // d/dlogp of sum(-w * logp) with w held fixed is -w.
  EXPECT_TRUE(torch::allclose(with.grad(), -terms.weights));
}

TEST(Objectives, CrossEntropyHasUnitWeights) {
  auto with = torch::tensor({-1.0, -2.0}, torch::requires_grad());
  ResponseTokens t{with, {}, {}, torch::zeros({2}, torch::kLong), 1};
  auto terms = make_objective(section("ce"))->terms(t);
  EXPECT_TRUE(torch::allclose(terms.token_loss, torch::tensor({1.0, 2.0}).to(terms.token_loss.dtype())));
}

TEST(Objectives, LossCeNormalisesToMeanOnePerSequenceThenClips) {
  // Sequence 0: losses 1, 3 (mean 2) -> 0.5, 1.5; sequence 1: losses 2, 2, 8 (mean 4) -> 0.5, 0.5, 2.
  auto with = torch::tensor({-1.0, -3.0, -2.0, -2.0, -8.0}, torch::requires_grad());
  ResponseTokens t{with, {}, {}, torch::tensor({0, 0, 1, 1, 1}, torch::kLong), 2};
  ObjectiveSection s = section("lossce");
  s.clip_min = 0.6;
  s.clip_max = 1.8;
  auto terms = make_objective(s)->terms(t);
  EXPECT_TRUE(torch::allclose(terms.weights, torch::tensor({0.6, 1.5, 0.6, 0.6, 1.8}).to(terms.weights.dtype())))
      << terms.weights;
}

TEST(Objectives, EntceWeightsFollowEntropyPerSequence) {
  auto with = torch::tensor({-1.0, -1.0, -1.0}, torch::requires_grad());
  auto entropy = torch::tensor({1.0, 3.0, 0.0});
  ResponseTokens t{with, {}, entropy, torch::tensor({0, 0, 1}, torch::kLong), 2};
  ObjectiveSection s = section("entce");
  s.clip_min = 0.0;
  s.clip_max = 10.0;
  auto terms = make_objective(s)->terms(t);
  // Sequence 0: 1/2, 3/2; sequence 1 has mean entropy 0 -> weight 1.
  EXPECT_TRUE(torch::allclose(terms.weights, torch::tensor({0.5, 1.5, 1.0})));
}

TEST(Objectives, EmptyResponsesAndEmptyProfilesGiveFiniteLosses) {
  for (const std::string name : {"ce", "perce", "lossce", "entce"}) {
    auto empty = torch::zeros({0}, torch::requires_grad());
    ResponseTokens t{empty, torch::zeros({0}), torch::zeros({0}), torch::zeros({0}, torch::kLong), 1};
    auto terms = make_objective(section(name))->terms(t);
    auto scale = normalisation_scale(Normalization::kTokens, t.sequence, 1, 0, 1);
    EXPECT_EQ(terms.token_loss.numel(), 0) << name;
    EXPECT_EQ(terms.weights.numel(), 0) << name;
    EXPECT_EQ((terms.token_loss * scale).sum().item<double>(), 0.0) << name;
    // Empty profile: both passes are the same. PerCE: PIR = 0 everywhere, so every weight is
    // clip_min (0.8). The others do not look at the second pass: CE weighs 1; LossCE weighs the
    // losses 2 and 1 by their mean 1.5 (4/3 and 2/3, clipped up to 0.8); EntCE sees equal
    // entropies (weight 1).
    auto lp = torch::tensor({-2.0, -1.0}, torch::requires_grad());
    ResponseTokens same{lp, lp.detach().clone(), torch::ones({2}), torch::zeros({2}, torch::kLong), 1};
    const auto terms_same = make_objective(section(name))->terms(same);
    const std::map<std::string, std::vector<double>> expected = {
        {"ce", {1.0, 1.0}}, {"perce", {0.8, 0.8}}, {"lossce", {4.0 / 3.0, 0.8}}, {"entce", {1.0, 1.0}}};
    EXPECT_TRUE(torch::allclose(terms_same.weights, torch::tensor(expected.at(name)).to(terms_same.weights.scalar_type())))
        << name << ": " << terms_same.weights;
    if (name == "perce") EXPECT_EQ(terms_same.pir.abs().max().item<double>(), 0.0);
    EXPECT_TRUE(std::isfinite(terms_same.token_loss.sum().item<double>())) << name;
  }
}

TEST(Normalisation, TokensAndSequencesScales) {
  auto seq = torch::tensor({0, 0, 0, 1}, torch::kLong);
  auto tokens = normalisation_scale(Normalization::kTokens, seq, 2, 8, 4);
  EXPECT_TRUE(torch::allclose(tokens, torch::full({4}, 1.0 / 8, torch::kFloat64)));
  // Sequences: 1 / (n_seq * sequences in step): 1/(3*4) for seq 0, 1/(1*4) for seq 1.
  auto sequences = normalisation_scale(Normalization::kSequences, seq, 2, 8, 4);
  EXPECT_TRUE(torch::allclose(sequences, torch::tensor({1.0 / 12, 1.0 / 12, 1.0 / 12, 0.25}, torch::kFloat64)));
}

// ---------------------------------------------------------------------------------------------
// float64 finite differences through a tiny model: the loss with the weights held at their
// values for the current parameters must have exactly the gradient autograd reports.
class ObjectiveGradient : public ::testing::TestWithParam<std::string> {};

TEST_P(ObjectiveGradient, MatchesFiniteDifferencesWithWeightsHeldFixed) {
  ModelConfig c = preset_model_config("qwen3", "tiny", 37);
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 8;
  c.num_hidden_layers = 1;
  CausalLM model(c);
  init_weights(*model, 5, 0.3);
  model->to(torch::kFloat64);
  auto objective = make_objective(section(GetParam()));

  auto with_ids = torch::tensor({{1, 7, 8, 9, 3, 4, 5}, {1, 11, 12, 6, 2, 0, 0}}, torch::kLong);
  auto with_mask = torch::tensor({{1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 0, 0}}, torch::kLong);
  auto without_ids = torch::tensor({{1, 3, 4, 5}, {1, 6, 2, 0}}, torch::kLong);
  auto without_mask = torch::tensor({{1, 1, 1, 1}, {1, 1, 1, 0}}, torch::kLong);
  // Responses: [3 4 5] and [6 2] -> predicting positions.
  auto with_select = torch::tensor({{0, 0, 0, 1, 1, 1}, {0, 0, 1, 1, 0, 0}}, torch::kBool);
  auto without_select = torch::tensor({{1, 1, 1}, {1, 1, 0}}, torch::kBool);
  auto sequence = torch::tensor({0, 0, 0, 1, 1}, torch::kLong);

  auto forward_terms = [&](const torch::Tensor* frozen_weights) {
    ResponseTokens t;
    t.sequence = sequence;
    t.num_sequences = 2;
    auto h = model->hidden_states(with_ids, with_mask, position_ids_from_mask(with_mask));
    torch::Tensor entropy;
    t.logp_personalised = model->selected_logprobs(h.slice(1, 0, 6), with_ids.slice(1, 1, 7), with_select, 2,
                                                   objective->needs_entropy() ? &entropy : nullptr);
    t.entropy = entropy.defined() ? entropy.detach() : entropy;
    {
      torch::NoGradGuard no_grad;
      auto h0 = model->hidden_states(without_ids, without_mask, position_ids_from_mask(without_mask));
      t.logp_counterfactual = model->selected_logprobs(h0.slice(1, 0, 3), without_ids.slice(1, 1, 4), without_select);
    }
    auto terms = objective->terms(t);
    if (frozen_weights) return (*frozen_weights * -t.logp_personalised).sum() / 5.0;
    return terms.token_loss.sum() / 5.0;
  };

  auto loss = forward_terms(nullptr);
  ASSERT_EQ(loss.scalar_type(), torch::kFloat64);
  loss.backward();
  torch::Tensor weights;
  {
    torch::NoGradGuard no_grad;
    ResponseTokens dummy;
    // Recompute the weights at the current parameters, to hold them fixed below.
    auto h = model->hidden_states(with_ids, with_mask, position_ids_from_mask(with_mask));
    torch::Tensor entropy;
    dummy.logp_personalised = model->selected_logprobs(h.slice(1, 0, 6), with_ids.slice(1, 1, 7), with_select, 2,
                                                       &entropy);
    dummy.entropy = entropy;
    auto h0 = model->hidden_states(without_ids, without_mask, position_ids_from_mask(without_mask));
    dummy.logp_counterfactual = model->selected_logprobs(h0.slice(1, 0, 3), without_ids.slice(1, 1, 4), without_select);
    dummy.sequence = sequence;
    dummy.num_sequences = 2;
    weights = objective->terms(dummy).weights.clone();
  }

  int checked = 0;
  for (const auto& item : model->named_parameters()) {
    auto param = item.value();
    auto flat = param.view(-1);
    auto grad = param.grad().view(-1);
    for (int64_t k : {int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
      const double eps = 1e-6;
      double plus, minus;
      {
        torch::NoGradGuard no_grad;
        const double original = flat[k].item<double>();
        flat[k].fill_(original + eps);
        plus = forward_terms(&weights).item<double>();
        flat[k].fill_(original - eps);
        minus = forward_terms(&weights).item<double>();
        flat[k].fill_(original);
      }
      const double numeric = (plus - minus) / (2 * eps);
      EXPECT_NEAR(grad[k].item<double>(), numeric, 1e-7 + 1e-5 * std::abs(numeric))
          << GetParam() << " " << item.key() << "[" << k << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
}

INSTANTIATE_TEST_SUITE_P(All, ObjectiveGradient, ::testing::Values("ce", "perce", "lossce", "entce"));

}  // namespace
