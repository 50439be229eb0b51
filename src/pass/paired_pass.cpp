// The with-profile / without-profile forward passes of a micro-batch.
#include "percetrain/pass/paired_pass.hpp"

#include <torch/torch.h>

#include "percetrain/model/decoder.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain {

void require_finite_logprobs(const torch::Tensor& logprobs, const std::string& where, const std::string& from) {
  if (logprobs.numel() == 0 || torch::isfinite(logprobs).all().item<bool>()) return;
  fail(where, "non-finite log-probabilities from " + from,
       "its weights or lora_alpha give NaN or infinity; check them, or load a half-precision model in float32");
}

PairedPass run_paired_pass(CausalLMImpl& model, const Objective& objective, const PairedBatch& batch,
                           int64_t chunk_tokens, bool always_counterfactual, CausalLMImpl* reference) {
  PairedPass pass;
  ResponseTokens& t = pass.tokens;
  t.sequence = batch.sequence;
  t.num_sequences = static_cast<int64_t>(batch.examples.size());
  t.data_weights = batch.data_weights;
  t.word_head = batch.word_head;

  // Next-token log-probs of the response tokens: position t of the hidden states predicts t + 1.
  auto logprobs_of = [&](CausalLMImpl& lm, const torch::Tensor& ids, const torch::Tensor& mask,
                         const torch::Tensor& select, torch::Tensor* entropy) {
    const int64_t T = ids.size(1);
    auto hidden = lm.hidden_states(ids, mask, position_ids_from_mask(mask));
    return lm.selected_logprobs(hidden.slice(1, 0, T - 1), ids.slice(1, 1, T), select, chunk_tokens, entropy);
  };
  auto response_logprobs = [&](const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& select,
                               torch::Tensor* entropy) { return logprobs_of(model, ids, mask, select, entropy); };

  torch::Tensor entropy;
  t.logp_personalised = response_logprobs(batch.personalised_ids, batch.personalised_mask,
                                          batch.personalised_select,
                                          objective.needs_entropy() ? &entropy : nullptr);
  if (objective.needs_entropy()) t.entropy = entropy.detach();
  if (objective.needs_counterfactual() || always_counterfactual) {
    torch::Tensor without;
    {
      torch::InferenceMode inference;
      without = response_logprobs(batch.counterfactual_ids, batch.counterfactual_mask,
                                  batch.counterfactual_select, nullptr);
    }
    // Inference tensors may not be saved for backward; a normal copy may.
    t.logp_counterfactual = without.clone();
  }
  if (objective.needs_reference()) {
    if (!reference)
      fail("objective." + objective.name(), "needs a reference model, and none was loaded",
           "this is a bug in the caller: load objective.reference_model (load_reference_model) for it");
    torch::Tensor on_reference;
    {
      torch::InferenceMode inference;
      on_reference = logprobs_of(*reference, batch.personalised_ids, batch.personalised_mask,
                                 batch.personalised_select, nullptr);
    }
    t.logp_reference = on_reference.clone();
  }
  pass.terms = objective.terms(t);
  return pass;
}

}  // namespace percetrain
