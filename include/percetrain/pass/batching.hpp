// Paired examples -> padded tensors, and the deterministic order in which a run visits them.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "percetrain/data/dataset.hpp"

namespace percetrain {

// Both sequences of every example of a micro-batch, right-padded. `*_select` marks, in the
// [B, T - 1] grid of next-token predictions, the positions whose target is a scored response
// token; flattening either selection in row-major order visits the same response tokens in the
// same order, which is how the two passes are aligned token by token.
struct PairedBatch {
  torch::Tensor personalised_ids, personalised_mask;          // [B, T1] int64
  torch::Tensor counterfactual_ids, counterfactual_mask;      // [B, T0] int64 (when collated)
  torch::Tensor personalised_select, counterfactual_select;   // [B, T1 - 1], [B, T0 - 1] bool
  torch::Tensor sequence;                                     // [N] int64 row of each response token
  torch::Tensor data_weights;  // [N] float32 record weights (NaN: none); undefined when no example has any
  torch::Tensor word_head;     // [N] int64 flat index of each token's word head; undefined without word heads
  std::vector<size_t> examples;                               // indices into the example list
  int64_t response_tokens = 0;                                // N
  int64_t personalised_tokens = 0, counterfactual_tokens = 0;  // non-padding tokens
};

// The number of response tokens of an example that both sequences can score: each scored
// token needs a preceding token in both sequences.
int64_t scored_response_tokens(const PairedExample& example);

PairedBatch collate_paired(const std::vector<PairedExample>& examples, const std::vector<size_t>& indices,
                           int64_t pad_id, const torch::Device& device, bool with_counterfactual);

// Every token id of the examples must be below the model's vocabulary size; otherwise one error
// names the id, the tokenizer, the model and both vocabulary sizes (not "index out of range");
// tokenizer_vocab_size < 0 when unknown.
void check_token_ids_fit(const std::vector<PairedExample>& examples, const std::string& tokenizer_path,
                         int64_t tokenizer_vocab_size, int64_t model_vocab_size, const std::string& model_path);

// One epoch's optimizer steps: a seeded shuffle (seed, epoch) of all examples, cut into groups of
// `batch_size` (the last one may be smaller).
std::vector<std::vector<size_t>> epoch_steps(size_t num_examples, int64_t batch_size, uint64_t seed,
                                             int64_t epoch, bool shuffle = true);

// A step's examples sorted by length (longest first, ties by index) and cut into micro-batches,
// so that similar lengths share padding.
std::vector<std::vector<size_t>> micro_batches(const std::vector<size_t>& step,
                                               const std::vector<PairedExample>& examples,
                                               int64_t micro_batch_size);

}  // namespace percetrain
