// The with-profile / without-profile forward passes of a micro-batch.
#include "percetrain/pass/paired_pass.hpp"

#include <torch/torch.h>

#include "percetrain/model/decoder.hpp"

namespace percetrain {

PairedPass run_paired_pass(CausalLMImpl& model, const Objective& objective, const PairedBatch& batch,
                           int64_t chunk_tokens, bool always_counterfactual) {
  PairedPass pass;
  ResponseTokens& t = pass.tokens;
  t.sequence = batch.sequence;
  t.num_sequences = static_cast<int64_t>(batch.examples.size());

  // Next-token log-probs of the response tokens: position t of the hidden states predicts t + 1.
  auto response_logprobs = [&](const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& select,
                               torch::Tensor* entropy) {
    const int64_t T = ids.size(1);
    auto hidden = model.hidden_states(ids, mask, position_ids_from_mask(mask));
    return model.selected_logprobs(hidden.slice(1, 0, T - 1), ids.slice(1, 1, T), select, chunk_tokens, entropy);
  };

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
  pass.terms = objective.terms(t);
  return pass;
}

}  // namespace percetrain
