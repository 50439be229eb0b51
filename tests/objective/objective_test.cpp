// Objectives: weight formulas, detachment, float64 finite-difference gradients through a model,
// and finite losses on degenerate inputs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "percetrain/model/decoder.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/util/error.hpp"

using namespace percetrain;

namespace {

// "perce:word" is perce with pir_scope word.
ObjectiveSection section(const std::string& name) {
  ObjectiveSection s;
  const auto colon = name.find(':');
  if (!enum_from_name(name.substr(0, colon), &s.name)) ADD_FAILURE() << "no objective " << name;
  if (colon != std::string::npos && !enum_from_name(name.substr(colon + 1), &s.pir_scope))
    ADD_FAILURE() << "no scope " << name;
  return s;
}

const double kNaN = std::nan("");

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

TEST(Objectives, DftWeighsEachTokenByItsOwnDetachedProbability) {
  auto with = torch::tensor({-0.1, -1.0, -5.0}, torch::dtype(torch::kFloat64).requires_grad(true));
  ResponseTokens t{with, {}, {}, torch::zeros({3}, torch::kLong), 1};
  auto terms = make_objective(section("dft"))->terms(t);
  // TRL's dft_loss: -p.detach() * log p, p = exp(log p); no clipping.
  const auto p = torch::tensor({std::exp(-0.1), std::exp(-1.0), std::exp(-5.0)}, torch::kFloat64);
  EXPECT_TRUE(torch::allclose(terms.weights, p));
  EXPECT_TRUE(torch::allclose(terms.token_loss, p * torch::tensor({0.1, 1.0, 5.0}, torch::kFloat64)));
  EXPECT_FALSE(terms.weights.requires_grad());
  terms.token_loss.sum().backward();
  // With p held fixed the gradient is -p, not d/dlogp (-e^logp logp) = -p (1 + log p).
  EXPECT_TRUE(torch::allclose(with.grad(), -p));
}

TEST(Objectives, Rho1KeepsTheTopExcessLossTokensOfEachSequence) {
  // Sequence 0 (4 tokens): excess = ref - cur = 0.5, 2.0, -1.0, 1.0 -> keep ceil(0.5 * 4) = 2:
  // tokens 1 and 3, each weighing 4 / 2. Sequence 1 (tokens 4-6): excess 0, 0, 3 -> keep
  // ceil(1.5) = 2: token 6 and, of the tied zeros, the earlier (token 4), each weighing 3 / 2.
  auto with = torch::tensor({-1.0, -3.0, -1.0, -2.0, -1.0, -1.0, -4.0}, torch::requires_grad());
  auto reference = torch::tensor({-0.5, -1.0, -2.0, -1.0, -1.0, -1.0, -1.0});
  ResponseTokens t{with, {}, {}, torch::tensor({0, 0, 0, 0, 1, 1, 1}, torch::kLong), 2};
  t.logp_reference = reference;
  ObjectiveSection s = section("rho1");
  s.rho1_keep_ratio = 0.5;
  auto terms = make_objective(s)->terms(t);
  const double k0 = 4.0 / 2, k1 = 3.0 / 2;
  EXPECT_TRUE(torch::allclose(terms.weights, torch::tensor({0.0, k0, 0.0, k0, k1, 0.0, k1}).to(terms.weights.dtype())))
      << terms.weights;
  // Each sequence's weights sum to its token count (Rho-1's 1 / (N k%) normaliser).
  EXPECT_NEAR(terms.weights.sum().item<double>(), 7.0, 1e-6);
  EXPECT_FALSE(terms.weights.requires_grad());
  // keep_ratio 1 trains every token at weight 1: plain CE.
  s.rho1_keep_ratio = 1.0;
  EXPECT_TRUE(torch::allclose(make_objective(s)->terms(t).weights, torch::ones({7})));
  // Without the reference's log-probs it is an error, not a silent CE.
  ResponseTokens missing{with, {}, {}, torch::tensor({0, 0, 0, 0, 1, 1, 1}, torch::kLong), 2};
  EXPECT_THROW(make_objective(s)->terms(missing), Error);
}

TEST(Objectives, Rho1RoundsTheKeptShareUpAndKeepsAtLeastOneToken) {
  auto excess = torch::tensor({1.0, 2.0, 3.0, 4.0, 5.0, 9.0});
  auto seq = torch::tensor({0, 0, 0, 0, 0, 1}, torch::kLong);
  // 0.6 * 5 = 3 exactly (not 4 from floating-point noise); the one-token sequence keeps it.
  auto w = top_excess_weights(excess, seq, 2, 0.6);
  EXPECT_TRUE(torch::allclose(w, torch::tensor({0.0, 0.0, 5.0 / 3, 5.0 / 3, 5.0 / 3, 1.0}))) << w;
  auto tiny = top_excess_weights(excess, seq, 2, 0.01);
  EXPECT_TRUE(torch::allclose(tiny, torch::tensor({0.0, 0.0, 0.0, 0.0, 5.0, 1.0}))) << tiny;
}

TEST(Objectives, WeightsFromDataUseTheRecordsWeightsAndTheDefaultElsewhere) {
  auto with = torch::tensor({-1.0, -2.0, -3.0}, torch::requires_grad());
  ResponseTokens t{with, {}, {}, torch::zeros({3}, torch::kLong), 1};
  t.data_weights = torch::tensor({2.0, kNaN, 0.0}, torch::kFloat32);
  ObjectiveSection s = section("weights_from_data");
  s.data_weight_default = 0.5;
  auto terms = make_objective(s)->terms(t);
  EXPECT_TRUE(torch::allclose(terms.weights, torch::tensor({2.0, 0.5, 0.0}))) << terms.weights;
  EXPECT_TRUE(torch::allclose(terms.token_loss, torch::tensor({2.0, 1.0, 0.0})));
  // A batch where no record carries weights: the default everywhere.
  ResponseTokens plain{with, {}, {}, torch::zeros({3}, torch::kLong), 1};
  EXPECT_TRUE(torch::allclose(make_objective(s)->terms(plain).weights, torch::full({3}, 0.5)));
}

TEST(Objectives, WordScopeCarriesTheFirstPiecesPirToTheRestOfTheWord) {
  // Words: [0, 1, 2] and [3, 4]; token 5 is in none (EOS). PIR = 2, 0, 0.1, -1, 3, 4.
  auto with = torch::tensor({-1.0, -1.0, -1.0, -2.0, -1.0, -1.0}, torch::requires_grad());
  auto without = torch::tensor({-3.0, -1.0, -1.1, -1.0, -4.0, -5.0});
  ResponseTokens t{with, without, {}, torch::zeros({6}, torch::kLong), 1};
  t.word_head = torch::tensor({0, 0, 0, 3, 3, 5}, torch::kLong);
  ObjectiveSection s = section("perce:word");
  s.clip_min = 0.0;
  s.clip_max = 10.0;
  auto terms = make_objective(s)->terms(t);
  EXPECT_TRUE(torch::allclose(terms.pir, torch::tensor({2.0, 2.0, 2.0, -1.0, -1.0, 4.0}))) << terms.pir;
  EXPECT_TRUE(torch::allclose(terms.weights, torch::tensor({2.0, 2.0, 2.0, 0.0, 0.0, 4.0})));
  // Token scope ignores the heads.
  EXPECT_TRUE(torch::allclose(make_objective(section("perce"))->terms(t).pir, torch::tensor({2.0, 0.0, 0.1, -1.0, 3.0, 4.0})));
  // Word scope without word heads is an error, not a silent token scope.
  ResponseTokens no_heads{with, without, {}, torch::zeros({6}, torch::kLong), 1};
  EXPECT_THROW(make_objective(s)->terms(no_heads), Error);
}

TEST(Objectives, EmptyResponsesAndEmptyProfilesGiveFiniteLosses) {
  for (const std::string name : {"ce", "perce", "lossce", "entce", "dft", "rho1", "weights_from_data", "perce:word"}) {
    auto empty = torch::zeros({0}, torch::requires_grad());
    ResponseTokens t{empty, torch::zeros({0}), torch::zeros({0}), torch::zeros({0}, torch::kLong), 1};
    t.logp_reference = torch::zeros({0});
    t.word_head = torch::zeros({0}, torch::kLong);
    auto terms = make_objective(section(name))->terms(t);
    auto scale = normalisation_scale(Normalization::kTokens, t.sequence, 1, 0, 1);
    EXPECT_EQ(terms.token_loss.numel(), 0) << name;
    EXPECT_EQ(terms.weights.numel(), 0) << name;
    EXPECT_EQ((terms.token_loss * scale).sum().item<double>(), 0.0) << name;
    // Empty profile: both passes are the same. PerCE: PIR = 0 everywhere, so every weight is
    // clip_min (0.8). The others do not look at the second pass: CE weighs 1; LossCE weighs the
    // losses 2 and 1 by their mean 1.5 (4/3 and 2/3, clipped up to 0.8); EntCE sees equal
    // entropies (weight 1).
    // DFT weighs by p = e^-2, e^-1; Rho-1 against an identical reference sees no excess and keeps
    // the earlier of the tied tokens (ceil(0.6 * 2) = 2: both); no record weights: the default 1.
    auto lp = torch::tensor({-2.0, -1.0}, torch::requires_grad());
    ResponseTokens same{lp, lp.detach().clone(), torch::ones({2}), torch::zeros({2}, torch::kLong), 1};
    same.logp_reference = lp.detach().clone();
    same.word_head = torch::tensor({0, 1}, torch::kLong);
    const auto terms_same = make_objective(section(name))->terms(same);
    const std::map<std::string, std::vector<double>> expected = {
        {"ce", {1.0, 1.0}},     {"perce", {0.8, 0.8}},
        {"lossce", {4.0 / 3.0, 0.8}}, {"entce", {1.0, 1.0}},
        {"dft", {std::exp(-2.0), std::exp(-1.0)}}, {"rho1", {1.0, 1.0}},
        {"weights_from_data", {1.0, 1.0}}, {"perce:word", {0.8, 0.8}}};
    EXPECT_TRUE(torch::allclose(terms_same.weights, torch::tensor(expected.at(name)).to(terms_same.weights.scalar_type())))
        << name << ": " << terms_same.weights;
    if (name.rfind("perce", 0) == 0) EXPECT_EQ(terms_same.pir.abs().max().item<double>(), 0.0);
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
  CausalLM reference(c);  // rho1's frozen model: other weights
  init_weights(*reference, 6, 0.3);
  reference->to(torch::kFloat64);
  ObjectiveSection config = section(GetParam());
  config.rho1_keep_ratio = 0.5;
  auto objective = make_objective(config);

  auto with_ids = torch::tensor({{1, 7, 8, 9, 3, 4, 5}, {1, 11, 12, 6, 2, 0, 0}}, torch::kLong);
  auto with_mask = torch::tensor({{1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 0, 0}}, torch::kLong);
  auto without_ids = torch::tensor({{1, 3, 4, 5}, {1, 6, 2, 0}}, torch::kLong);
  auto without_mask = torch::tensor({{1, 1, 1, 1}, {1, 1, 1, 0}}, torch::kLong);
  // Responses: [3 4 5] and [6 2] -> predicting positions.
  auto with_select = torch::tensor({{0, 0, 0, 1, 1, 1}, {0, 0, 1, 1, 0, 0}}, torch::kBool);
  auto without_select = torch::tensor({{1, 1, 1}, {1, 1, 0}}, torch::kBool);
  auto sequence = torch::tensor({0, 0, 0, 1, 1}, torch::kLong);
  // Record weights (one token without: the default) and word heads ([3 4] one word, 5 its own).
  auto data_weights = torch::tensor({0.5, kNaN, 2.0, 1.5, 0.0}, torch::kFloat64);
  auto word_head = torch::tensor({0, 0, 2, 3, 3}, torch::kLong);
  torch::Tensor logp_reference;
  {
    torch::NoGradGuard no_grad;
    auto h = reference->hidden_states(with_ids, with_mask, position_ids_from_mask(with_mask));
    logp_reference = reference->selected_logprobs(h.slice(1, 0, 6), with_ids.slice(1, 1, 7), with_select);
  }
  auto extras = [&](ResponseTokens& t) {
    t.data_weights = data_weights;
    t.word_head = word_head;
    t.logp_reference = logp_reference;
  };

  auto forward_terms = [&](const torch::Tensor* frozen_weights) {
    ResponseTokens t;
    t.sequence = sequence;
    t.num_sequences = 2;
    extras(t);
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
    extras(dummy);
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

INSTANTIATE_TEST_SUITE_P(All, ObjectiveGradient,
                         ::testing::Values("ce", "perce", "lossce", "entce", "dft", "rho1", "weights_from_data",
                                           "perce:word"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), ':', '_');
                           return name;
                         });

}  // namespace
