// A tiny model and seeded batches for the gradient-reducer tests, in one process and under
// torchrun alike: every rank can recompute any rank's gradients, so the expected sums are
// computed without communication.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <vector>

#include "percetrain/model/config.hpp"
#include "percetrain/model/decoder.hpp"

namespace percetrain::dist_test {

inline CausalLM tiny_model(uint64_t seed = 7) {
  const std::string config =
      R"({"model_type":"llama","vocab_size":48,"hidden_size":16,"intermediate_size":40,)"
      R"("num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"tie_word_embeddings":false})";
  CausalLM model(parse_model_config(config, "tiny config.json"));
  init_weights(*model, seed, 0.02);
  return model;
}

inline std::vector<torch::Tensor> parameters(CausalLM& model) {
  std::vector<torch::Tensor> out;
  for (const auto& p : model->named_parameters()) out.push_back(p.value());
  return out;
}

// The summed next-token loss of micro-batch `micro` of `rank`, on the model: backward of it adds
// that micro-batch's gradients.
inline torch::Tensor micro_batch_loss(CausalLM& model, int rank, int micro) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(1000 + 10 * rank + micro));
  const auto ids = torch::randint(0, 48, {2, 7}, gen, torch::kLong);
  const auto mask = torch::ones({2, 7}, torch::kLong);
  return -model->next_token_logprobs(ids, mask).sum();
}

// The gradients `rank` accumulates over `micro_batches` backward passes, by parameter.
inline std::vector<torch::Tensor> local_gradients(CausalLM& model, int rank, int micro_batches) {
  auto params = parameters(model);
  for (auto& p : params) p.mutable_grad() = torch::Tensor();
  for (int k = 0; k < micro_batches; ++k) micro_batch_loss(model, rank, k).backward();
  std::vector<torch::Tensor> out;
  for (auto& p : params) {
    out.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    p.mutable_grad() = torch::Tensor();
  }
  return out;
}

}  // namespace percetrain::dist_test
