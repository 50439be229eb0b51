// Training objectives as pure functions of per-token log-probs: PerCE (PerContrast weights) and
// the CE, LossCE, EntCE, DFT, Rho-1 and data-weighted baselines. They never touch the model or
// the optimizer.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

#include "percetrain/objective/objective_section.hpp"

namespace percetrain {

// Per response token of a micro-batch, flattened in the same order for every field: [N].
struct ResponseTokens {
  torch::Tensor logp_personalised;    // log P(y_i | p, x, y_<i); carries the gradient
  torch::Tensor logp_counterfactual;  // log P(y_i | x, y_<i), no gradient (perce only)
  torch::Tensor entropy;              // predictive entropy at y_i's position, no gradient (entce only)
  torch::Tensor sequence;             // int64 index of the token's sequence in the micro-batch
  int64_t num_sequences = 0;
  torch::Tensor logp_reference;       // log P_ref(y_i | p, x, y_<i) of a frozen model, no gradient (rho1 only)
  torch::Tensor data_weights;         // weights read from the records, NaN where none is given (weights_from_data)
  torch::Tensor word_head;            // int64 [N]: index of the first piece of the token's word (itself
                                      // when it starts one or is in none); perce with pir_scope word
};

struct ObjectiveTerms {
  torch::Tensor token_loss;  // [N]: w_i * -logp_personalised_i; normalised by the trainer
  torch::Tensor weights;     // [N] w_i (detached)
  torch::Tensor pir;         // [N] PIR_i (detached); defined for perce
};

class Objective {
 public:
  virtual ~Objective() = default;
  virtual std::string name() const = 0;
  virtual bool needs_counterfactual() const { return false; }
  virtual bool needs_entropy() const { return false; }
  virtual bool needs_reference() const { return false; }  // a frozen reference model's log-probs
  virtual ObjectiveTerms terms(const ResponseTokens& tokens) const = 0;
};

std::unique_ptr<Objective> make_objective(const ObjectiveSection& config);

// PIR_i = log P(y_i | p, x, y_<i) - log P(y_i | x, y_<i), detached.
torch::Tensor personal_influence_ratio(const torch::Tensor& logp_personalised,
                                       const torch::Tensor& logp_counterfactual);

// PIR of each token's word head: pir[word_head[i]] (word_head from ResponseTokens).
torch::Tensor carry_to_word(const torch::Tensor& pir, const torch::Tensor& word_head);

// Rho-1's token selection within each sequence: the ceil(keep_ratio * n) tokens with the largest
// excess loss (ties: the earlier token) weigh n / kept, the others 0, so that each sequence's
// weights sum to its token count as Rho-1's 1 / (N * k%) normaliser has it.
torch::Tensor top_excess_weights(const torch::Tensor& excess_loss, const torch::Tensor& sequence,
                                 int64_t num_sequences, double keep_ratio);

// values_i / mean of values over the tokens of the same sequence (1 where that mean is 0).
torch::Tensor normalise_per_sequence(const torch::Tensor& values, const torch::Tensor& sequence,
                                     int64_t num_sequences);

// The factor each token's loss term is multiplied by so that summing over all micro-batches of
// an optimizer step gives the step's loss:
//   "tokens":    1 / (response tokens in the step)
//   "sequences": 1 / (tokens of the token's sequence * sequences in the step)
torch::Tensor normalisation_scale(Normalization mode, const torch::Tensor& sequence,
                                  int64_t num_sequences, int64_t step_tokens, int64_t step_sequences);

}  // namespace percetrain
