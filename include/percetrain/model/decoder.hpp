// The decoder-only transformer shared by Llama, Mistral, Qwen2 and Qwen3, with modules
// registered under the Hugging Face key names so that loading is a name lookup.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <tuple>
#include <vector>

#include "percetrain/model/config.hpp"

namespace percetrain {

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  // x: [..., dim] -> [..., dim]; reduces in fp32 and casts back, as Hugging Face does.
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

// Rotary embeddings for given positions, shared by every layer of one forward.
struct Rope {
  torch::Tensor cos, sin;  // [B, 1, T, head_dim] in the compute dtype
};

// Keys (after RoPE) and values of every layer for the positions decoded so far, so that a
// generation step runs the model over its new tokens only. Inference only: the buffers are
// written in place, so no gradient flows through them.
struct KVCache {
  std::vector<torch::Tensor> keys, values;  // per layer: [B, KV, capacity, D]
  int64_t length = 0;    // positions held: the first `length` of the capacity
  int64_t reserve = 0;   // capacity to allocate on first use (grows by doubling past it)
  // Keeps batch rows `rows` ([B'] int64, on the cache's device), e.g. to drop finished ones.
  void select_rows(const torch::Tensor& rows);
};

// An extra term on a projection's output, e.g. a LoRA adapter (model/lora.hpp).
class ProjectionAdapter {
 public:
  virtual ~ProjectionAdapter() = default;
  // x: [..., in], base: [..., out] = W x (+ b) -> [..., out]; `training`: the module's mode.
  // Gradient checkpointing recomputes it in backward, so it must give the same result again: any
  // randomness is a pure function of its inputs (LoRA's dropout masks: of the step and the
  // samples, model/lora.hpp), never a generator's state.
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& base, bool training) = 0;
};

// A linear layer under a Hugging Face name (q_proj, ..., down_proj) that can carry an adapter;
// without one it is exactly torch::nn::Linear.
class ProjectionImpl : public torch::nn::LinearImpl {
 public:
  explicit ProjectionImpl(const torch::nn::LinearOptions& options) : torch::nn::LinearImpl(options) {}
  // x: [..., in] -> [..., out]
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = torch::nn::LinearImpl::forward(x);
    return adapter ? adapter->forward(x, y, is_training()) : y;
  }
  std::shared_ptr<ProjectionAdapter> adapter;  // not a registered module: the base's
                                               // parameters and files stay the model's own
};
TORCH_MODULE(Projection);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const ModelConfig& config);
  // x: [B, T, C], mask: additive [B, 1, T, T] -> [B, T, C]
  torch::Tensor forward(const torch::Tensor& x, const Rope& rope, const torch::Tensor& mask);
  // Incremental form. x: [B, t, C] (new positions only), mask: additive [B, 1, t, S + t] over
  // the S cached keys and the t new ones; appends the new keys/values to layer `layer` of
  // `cache` (whose length S the caller advances) -> [B, t, C]
  torch::Tensor forward_cached(const torch::Tensor& x, const Rope& rope, const torch::Tensor& mask,
                               KVCache& cache, size_t layer);

  Projection q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // qwen3 only

 private:
  // x: [B, T, C] -> q, k and v [B, KV, T, D], after q/k norms and RoPE. q is [B, H, T, D] for
  // SDPA (LibTorch >= 2.1), else scaled by attention_scale() and laid out [B, KV, T * G, D]
  // for the grouped attention (see attend()).
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> project(const torch::Tensor& x, const Rope& rope);
  // q as project() returns it, k and v: [B, KV, S, D], mask: additive causal [B, 1, t, S] -> [B, t, C]
  torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& mask);
  double attention_scale() const;  // 1 / sqrt(head_dim)

  int64_t heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(Attention);

class MLPImpl : public torch::nn::Module {
 public:
  explicit MLPImpl(const ModelConfig& config);
  // x: [B, T, C] -> [B, T, C]; down(silu(gate(x)) * up(x))
  torch::Tensor forward(const torch::Tensor& x);
  Projection gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  explicit DecoderLayerImpl(const ModelConfig& config);
  // x: [B, T, C] -> [B, T, C]
  torch::Tensor forward(const torch::Tensor& x, const Rope& rope, const torch::Tensor& mask);
  // x: [B, t, C] -> [B, t, C]; see AttentionImpl::forward_cached
  torch::Tensor forward_cached(const torch::Tensor& x, const Rope& rope, const torch::Tensor& mask,
                               KVCache& cache, size_t layer);
  Attention self_attn{nullptr};
  MLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

// "model." in the Hugging Face key names.
class DecoderModelImpl : public torch::nn::Module {
 public:
  explicit DecoderModelImpl(const ModelConfig& config);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(DecoderModel);

class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(const ModelConfig& config);

  // input_ids, attention_mask (1 = token, 0 = padding), position_ids: [B, T] int64
  //   -> final hidden states [B, T, C] (after the last norm).
  // Padding may be on either side; a padded position's output is meaningless but finite.
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                              const torch::Tensor& position_ids);

  // Incremental forward for generation. input_ids: [B, t] the new tokens; attention_mask:
  // [B, S + t] over the S = cache.length cached positions and the new ones (1 = token,
  // 0 = padding); position_ids: [B, t]. Appends to `cache` and advances its length
  //   -> final hidden states of the new positions [B, t, C].
  // Same masking as hidden_states (causal, padding, sliding window over the padded layout), so
  // prefill + steps give the hidden states hidden_states gives for the whole sequence.
  torch::Tensor forward_step(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                             const torch::Tensor& position_ids, KVCache& cache);

  // log P(targets[b, t] | hidden[b, t]) in fp32 (fp64 for fp64 models) for the positions where `select` is true, 0
  // elsewhere. hidden: [B, T, C], targets: [B, T] int64, select: [B, T] bool -> [B, T].
  // The vocabulary projection runs over `chunk_tokens` selected positions at a time in forward
  // and again in backward, so no [B, T, V] logits tensor is ever held; chunk_tokens <= 0 sizes
  // the chunks so that their temporaries stay within 256 MiB.
  torch::Tensor target_logprobs(const torch::Tensor& hidden, const torch::Tensor& targets,
                                const torch::Tensor& select, int64_t chunk_tokens = 0);

  // The same for the selected positions only, flattened in row-major order: [N] with
  // N = select.sum(). `entropy`, when given, receives each position's predictive entropy [N]
  // (no gradient). Log-probs are fp32 (fp64 for a fp64 model).
  torch::Tensor selected_logprobs(const torch::Tensor& hidden, const torch::Tensor& targets,
                                  const torch::Tensor& select, int64_t chunk_tokens = 0,
                                  torch::Tensor* entropy = nullptr);

  // Next-token log-probs of a padded batch: out[b, t] = log P(ids[b, t+1] | ids[b, <=t]) for
  // t < T-1 where both positions are real tokens, else 0. [B, T] -> [B, T-1].
  torch::Tensor next_token_logprobs(const torch::Tensor& input_ids,
                                    const torch::Tensor& attention_mask);

  // The output projection's weight: lm_head.weight, or embed_tokens.weight when tied.
  torch::Tensor output_weight() const;

  const ModelConfig& config() const { return config_; }
  // Recompute each decoder layer in backward instead of keeping its activations (training only).
  void set_gradient_checkpointing(bool on) { gradient_checkpointing_ = on; }
  DecoderModel model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // absent (null) when tie_word_embeddings

 private:
  // Whether plain causal attention (no mask tensor) is exact for this batch; see decoder.cpp.
  bool causal_mask_is_exact(const torch::Tensor& attention_mask, int64_t T) const;

  ModelConfig config_;
  torch::Tensor inv_freq_;  // [head_dim / 2] fp32, on the CPU; moved per forward
  bool gradient_checkpointing_ = false;
};
TORCH_MODULE(CausalLM);

// One decoder layer whose activations are recomputed in backward. x: [B, T, C] -> [B, T, C]
torch::Tensor checkpointed_layer_forward(DecoderLayerImpl& layer, const torch::Tensor& x, const Rope& rope,
                                         const torch::Tensor& mask);

// Position ids for a padded batch: the count of real tokens before each position, with padded
// positions set to 1 (the convention of Hugging Face generate). [B, T] -> [B, T] int64.
torch::Tensor position_ids_from_mask(const torch::Tensor& attention_mask);

// Inverse RoPE frequencies after the config's scaling: [head_dim / 2] fp32.
torch::Tensor rope_inv_freq(const ModelConfig& config);

// Hugging Face-style random initialisation (normal(0, std) for projections and embeddings,
// ones for norms, zeros for biases) from a seeded generator, in a fixed order.
void init_weights(CausalLMImpl& model, uint64_t seed, double std = 0.02);

}  // namespace percetrain
