// The paired forward pass under both training and scoring: the personalised sequence (with
// autograd when grad mode is on) and, when asked, the counterfactual one under inference mode,
// reduced to per-token log-probs of the response and the objective's terms.
#pragma once

#include <cstdint>
#include <string>

#include "percetrain/objective/objective.hpp"
#include "percetrain/pass/batching.hpp"

namespace percetrain {

class CausalLMImpl;

struct PairedPass {
  ResponseTokens tokens;
  ObjectiveTerms terms;
};

// Runs the passes `objective` needs (the counterfactual one also when `always_counterfactual`,
// for validation and scoring) over `batch`; log-probs are computed `chunk_tokens` positions at a
// time (0: sized by a memory budget). An objective that needs a reference model (rho1) gets the
// log-probs of `reference` on the personalised sequence, under inference mode; the batch's record
// weights and word heads are passed on as they are.
PairedPass run_paired_pass(CausalLMImpl& model, const Objective& objective, const PairedBatch& batch,
                           int64_t chunk_tokens, bool always_counterfactual = false,
                           CausalLMImpl* reference = nullptr);

// Fails with "non-finite log-probabilities from <from>" (where: `where`) when `logprobs` holds
// NaN or infinity. Finite weights cannot give them; NaN or infinite weights, an absurd LoRA
// scaling or an overflow in a half-precision dtype do, and the statistics and files built from
// them would be silently meaningless.
void require_finite_logprobs(const torch::Tensor& logprobs, const std::string& where, const std::string& from);

}  // namespace percetrain
