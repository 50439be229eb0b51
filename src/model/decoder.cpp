// The decoder forward (RoPE, GQA attention with padding masks, SwiGLU) and the chunked
// target log-prob function whose backward recomputes logits instead of storing them.
#include "percetrain/model/decoder.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "percetrain/model/fused_ops.hpp"
#include "percetrain/util/error.hpp"

// LibTorch >= 2.5 has scaled_dot_product_attention with `scale` and `enable_gqa` (query heads read
// their key/value head without K and V being repeated); older ones (Debian's 1.13) take the
// grouped matmul attention below, which wants the queries scaled and laid out by RoPE's kernel.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
#define PERCETRAIN_SDPA 1
#else
#define PERCETRAIN_SDPA 0
#endif

namespace percetrain {
namespace {
constexpr bool kGroupedAttention = !PERCETRAIN_SDPA;
// Query positions per causal block of the grouped attention (see AttentionImpl::attend); 64
// measured slower at T = 256 (attention products 200 ms a step against 141 ms: smaller GEMMs).
constexpr int64_t kCausalBlock = 128;
}  // namespace

// ---------------------------------------------------------------------------------------------
RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) { return rms_norm(x, weight, eps_); }

// ---------------------------------------------------------------------------------------------
namespace {

Projection make_projection(int64_t in, int64_t out, bool bias) {
  return Projection(torch::nn::LinearOptions(in, out).bias(bias));
}

}  // namespace

AttentionImpl::AttentionImpl(const ModelConfig& c)
    : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim) {
  const bool qkv_bias = c.attention_bias;
  // Llama's attention_bias also covers o_proj; Qwen2 has q/k/v biases only.
  const bool o_bias = c.attention_bias && c.model_type != "qwen2";
  q_proj = register_module("q_proj", make_projection(c.hidden_size, heads_ * head_dim_, qkv_bias));
  k_proj = register_module("k_proj", make_projection(c.hidden_size, kv_heads_ * head_dim_, qkv_bias));
  v_proj = register_module("v_proj", make_projection(c.hidden_size, kv_heads_ * head_dim_, qkv_bias));
  o_proj = register_module("o_proj", make_projection(heads_ * head_dim_, c.hidden_size, o_bias));
  if (c.qk_norm) {
    q_norm = register_module("q_norm", RMSNorm(head_dim_, c.rms_norm_eps));
    k_norm = register_module("k_norm", RMSNorm(head_dim_, c.rms_norm_eps));
  }
}

double AttentionImpl::attention_scale() const { return 1.0 / std::sqrt(static_cast<double>(head_dim_)); }

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> AttentionImpl::project(const torch::Tensor& x,
                                                                             const Rope& rope) {
  const int64_t B = x.size(0), T = x.size(1), D = head_dim_;
  auto q = q_proj(x);  // [B, T, H * D]
  auto k = k_proj(x);  // [B, T, KV * D]
  auto v = v_proj(x).view({B, T, kv_heads_, D}).transpose(1, 2);  // [B, KV, T, D]
  if (q_norm) {  // Qwen3 normalises each head before the rotation.
    q = q_norm(q.view({B, T, heads_, D})).reshape({B, T, heads_ * D});
    k = k_norm(k.view({B, T, kv_heads_, D})).reshape({B, T, kv_heads_ * D});
  }
  // The grouped attention below wants q as [B, KV, T * G, D]; SDPA wants [B, H, T, D].
  q = kGroupedAttention ? rope_heads(q, heads_, rope.cos, rope.sin, attention_scale(), heads_ / kv_heads_)
                        : rope_heads(q, heads_, rope.cos, rope.sin, 1.0);
  k = rope_heads(k, kv_heads_, rope.cos, rope.sin, 1.0);  // [B, KV, T, D]
  return {q, k, v};
}

torch::Tensor AttentionImpl::attend(const torch::Tensor& q, const torch::Tensor& k_in,
                                    const torch::Tensor& v_in, const torch::Tensor& mask) {
  const int64_t B = q.size(0), S = k_in.size(2), D = head_dim_;
  const int64_t groups = heads_ / kv_heads_;
  auto k = k_in, v = v_in;
#if PERCETRAIN_SDPA
  (void)S;
  const int64_t T = q.size(2);
  // An undefined mask means plain causal attention (see causal_mask_is_exact): is_causal lets the
  // fused kernels skip the blocks above the diagonal and, on CUDA, take flash attention, which
  // takes no explicit mask. enable_gqa: query head h reads kv head h / groups (HF's repeat_kv),
  // without copies. On CUDA only flash attention takes enable_gqa; with a mask (generation, narrow
  // windows) the memory-efficient kernel would be refused for the math one, so K and V are
  // repeated there instead. The CPU's flash kernel takes both (measured: GQA with a mask 15%
  // faster than repeating).
  const bool repeat_kv = groups > 1 && mask.defined() && q.is_cuda();
  if (repeat_kv) {
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
  }
  const auto out = at::scaled_dot_product_attention(q, k, v, mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt,
                                                    0.0, !mask.defined(), attention_scale(), groups > 1 && !repeat_kv);  // [B, H, T, D]
  return o_proj(out.transpose(1, 2).reshape({B, T, heads_ * D}));
#else
  // q: [B, KV, T * G, D], scaled, row t * G + g for query head kv * G + g (Hugging Face's
  // repeat_kv order), so that the G heads sharing a kv head are one matrix product with it and
  // k and v are never copied. No in-place op on the scores: on a view of a tensor autograd saved,
  // it costs a CopySlices node that clones all scores in backward.
  const int64_t T = q.size(2) / groups;
  // The mask is causal (every caller builds it with additive_mask), so when queries and keys are
  // the same positions, queries before t1 see no key at or after t1: blocks of kCausalBlock
  // queries multiply only against the keys they can see, ~(n + 1) / 2n of the full products for
  // n blocks. The keys cut off would have had probability exactly 0.
  const bool causal_blocks = T == S && T > kCausalBlock && fused_kernels_enabled();
  const int64_t block = causal_blocks ? kCausalBlock : T;
  std::vector<torch::Tensor> outs;
  for (int64_t t0 = 0; t0 < T; t0 += block) {
    const int64_t t1 = std::min(T, t0 + block), rows = t1 - t0, keys = causal_blocks ? t1 : S;
    auto scores = torch::matmul(q.narrow(2, t0 * groups, rows * groups), k.narrow(2, 0, keys).transpose(-1, -2))
                      .view({B, kv_heads_, rows, groups, keys});
    auto probs = masked_softmax(scores, mask.narrow(2, t0, rows).narrow(3, 0, keys));  // [B, KV, rows, G, keys]
    outs.push_back(torch::matmul(probs.view({B, kv_heads_, rows * groups, keys}), v.narrow(2, 0, keys)));
  }
  auto out = outs.size() == 1 ? outs.front() : torch::cat(outs, 2);  // [B, KV, T * G, D]
  return o_proj(out.view({B, kv_heads_, T, groups, D}).permute({0, 2, 1, 3, 4}).reshape({B, T, heads_ * D}));
#endif
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const Rope& rope,
                                     const torch::Tensor& mask) {
  auto [q, k, v] = project(x, rope);
  return attend(q, k, v, mask);
}

torch::Tensor AttentionImpl::forward_cached(const torch::Tensor& x, const Rope& rope,
                                            const torch::Tensor& mask, KVCache& cache, size_t layer) {
  auto [q, k, v] = project(x, rope);
  const int64_t S = cache.length, t = x.size(1);
  torch::Tensor& keys = cache.keys.at(layer);
  torch::Tensor& values = cache.values.at(layer);
  // Preallocated buffers, grown by doubling: appending costs O(t), not a copy of the cache.
  if (!keys.defined() || keys.size(2) < S + t) {
    const int64_t capacity =
        std::max({S + t, cache.reserve, keys.defined() ? 2 * keys.size(2) : int64_t{0}});
    auto grown_k = torch::empty({k.size(0), kv_heads_, capacity, head_dim_}, k.options());
    auto grown_v = torch::empty({v.size(0), kv_heads_, capacity, head_dim_}, v.options());
    if (S > 0) {
      grown_k.narrow(2, 0, S).copy_(keys.narrow(2, 0, S));
      grown_v.narrow(2, 0, S).copy_(values.narrow(2, 0, S));
    }
    keys = grown_k;
    values = grown_v;
  }
  keys.narrow(2, S, t).copy_(k);
  values.narrow(2, S, t).copy_(v);
  return attend(q, keys.narrow(2, 0, S + t), values.narrow(2, 0, S + t), mask);
}

void KVCache::select_rows(const torch::Tensor& rows) {
  for (auto* buffers : {&keys, &values})
    for (auto& b : *buffers)
      if (b.defined()) b = b.index_select(0, rows);
}

// ---------------------------------------------------------------------------------------------
MLPImpl::MLPImpl(const ModelConfig& c) {
  gate_proj = register_module("gate_proj", make_projection(c.hidden_size, c.intermediate_size, false));
  up_proj = register_module("up_proj", make_projection(c.hidden_size, c.intermediate_size, false));
  down_proj = register_module("down_proj", make_projection(c.intermediate_size, c.hidden_size, false));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) {
  return down_proj(swiglu(gate_proj(x), up_proj(x)));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c) {
  self_attn = register_module("self_attn", Attention(c));
  mlp = register_module("mlp", MLP(c));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const Rope& rope,
                                        const torch::Tensor& mask) {
  auto h = x + self_attn(input_layernorm(x), rope, mask);
  return h + mlp(post_attention_layernorm(h));
}

torch::Tensor DecoderLayerImpl::forward_cached(const torch::Tensor& x, const Rope& rope,
                                               const torch::Tensor& mask, KVCache& cache, size_t layer) {
  auto h = x + self_attn->forward_cached(input_layernorm(x), rope, mask, cache, layer);
  return h + mlp(post_attention_layernorm(h));
}

DecoderModelImpl::DecoderModelImpl(const ModelConfig& c) {
  embed_tokens = register_module(
      "embed_tokens", torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size)));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(DecoderLayer(c));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

// ---------------------------------------------------------------------------------------------
torch::Tensor rope_inv_freq(const ModelConfig& c) {
  const int64_t half = c.head_dim / 2;
  auto exponents = torch::arange(0, c.head_dim, 2, torch::kFloat64) / static_cast<double>(c.head_dim);
  auto inv_freq = 1.0 / torch::pow(c.rope_theta, exponents);  // [half] fp64
  const RopeScaling& rs = c.rope_scaling;
  if (rs.type == "linear") {
    inv_freq = inv_freq / rs.factor;
  } else if (rs.type == "llama3") {
    // Long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
    const double old_ctx = static_cast<double>(rs.original_max_position_embeddings);
    const double low_freq_wavelen = old_ctx / rs.low_freq_factor;
    const double high_freq_wavelen = old_ctx / rs.high_freq_factor;
    auto wavelen = 2.0 * M_PI / inv_freq;
    auto scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / rs.factor, inv_freq);
    auto smooth = (old_ctx / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
    auto smoothed = (1.0 - smooth) * scaled / rs.factor + smooth * scaled;
    auto medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
    inv_freq = torch::where(medium, smoothed, scaled);
  }
  TORCH_INTERNAL_ASSERT(inv_freq.size(0) == half);
  return inv_freq.to(torch::kFloat32);
}

torch::Tensor position_ids_from_mask(const torch::Tensor& attention_mask) {
  auto mask = attention_mask.to(torch::kLong);
  auto positions = mask.cumsum(1) - 1;
  return positions.masked_fill(mask == 0, 1);
}

namespace {

using torch::autograd::AutogradContext;

// Activation checkpointing for one decoder layer: forward keeps only the layer's input; backward
// runs the layer again with autograd on and back-propagates through that recomputation, which
// accumulates the parameter gradients exactly as the plain path does (LibTorch has no built-in).
// Function::apply records every tensor argument (2.x asks each for its device), so the "no mask:
// causal" case (see causal_mask_is_exact) travels through it as an empty tensor.
torch::Tensor causal_if_empty(const torch::Tensor& mask) { return mask.numel() == 0 ? torch::Tensor() : mask; }

struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  // x: [B, T, C] -> [B, T, C]
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, torch::Tensor cos, torch::Tensor sin,
                               torch::Tensor mask, DecoderLayerImpl* layer) {
    ctx->save_for_backward({x});
    ctx->saved_data["cos"] = cos;
    ctx->saved_data["sin"] = sin;
    ctx->saved_data["mask"] = mask;
    ctx->saved_data["layer"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(layer));
    return layer->forward(x, Rope{cos, sin}, causal_if_empty(mask));  // autograd is off inside Function::forward
  }

  static torch::autograd::tensor_list backward(AutogradContext* ctx, torch::autograd::tensor_list grads) {
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(static_cast<intptr_t>(ctx->saved_data["layer"].toInt()));
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    Rope rope{ctx->saved_data["cos"].toTensor(), ctx->saved_data["sin"].toTensor()};
    torch::Tensor y;
    {
      torch::AutoGradMode enable(true);
      y = layer->forward(x, rope, causal_if_empty(ctx->saved_data["mask"].toTensor()));
    }
    torch::autograd::backward({y}, {grads[0]});
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpointed_layer_forward(DecoderLayerImpl& layer, const torch::Tensor& x, const Rope& rope,
                                         const torch::Tensor& mask) {
  // Autograd calls backward only for an input that requires grad: with a frozen base (adapters)
  // the first layer's input does not, and the adapters inside would get no gradient.
  const bool needs_input_grad = torch::GradMode::is_enabled() && !x.requires_grad();
  return CheckpointedLayer::apply(needs_input_grad ? x.detach().requires_grad_(true) : x, rope.cos, rope.sin,
                                  mask.defined() ? mask : torch::empty({0}, x.options()), &layer);
}

CausalLMImpl::CausalLMImpl(const ModelConfig& c) : config_(c) {
  model = register_module("model", DecoderModel(c));
  if (!c.tie_word_embeddings)
    lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.vocab_size).bias(false)));
  inv_freq_ = rope_inv_freq(c);
}

torch::Tensor CausalLMImpl::output_weight() const {
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

namespace {

// Rotary tables for `position_ids` [B, t]: fp32 angles (as Hugging Face computes them), cast to
// the compute dtype -> cos/sin [B, 1, t, D].
Rope rope_tables(const torch::Tensor& inv_freq, const torch::Tensor& position_ids,
                 c10::ScalarType dtype, c10::Device device) {
  auto freqs = position_ids.to(device, torch::kFloat32).unsqueeze(-1) *
               inv_freq.to(device).view({1, 1, -1});  // [B, t, D/2]
  auto angles = torch::cat({freqs, freqs}, -1).unsqueeze(1);  // [B, 1, t, D]
  return Rope{angles.cos().to(dtype), angles.sin().to(dtype)};
}

// The additive mask of queries at padded-layout indices [start, start + t) over keys [0, S):
// causal, key padding, and the sliding window (key j visible from query i when j <= i and
// i - j < window). attention_mask: [B, S] -> [B, 1, t, S].
torch::Tensor additive_mask(const torch::Tensor& attention_mask, int64_t start, int64_t t,
                            int64_t window, c10::ScalarType dtype, c10::Device device) {
  const int64_t S = attention_mask.size(1);
  // Row r is query index i = start + r: keys j <= i (tril), and i - j < window (triu). Built
  // from diagonals rather than an [t, S] index difference: at T = 2048 that took 20 ms a forward.
  auto allowed = torch::ones({t, S}, torch::TensorOptions().dtype(torch::kBool).device(device)).tril(start);
  if (window > 0) allowed = allowed.triu(start - window + 1);
  allowed = allowed.unsqueeze(0).logical_and(attention_mask.to(device).to(torch::kBool).unsqueeze(1));
  // The dtype's most negative finite value, as HF's torch.finfo(dtype).min (bf16's is not float's:
  // float's lowest rounds to -inf in bf16, which c10 refuses as an overflow).
  const double masked = dtype == torch::kHalf       ? -65504.0
                        : dtype == torch::kBFloat16 ? static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest())
                                                    : std::numeric_limits<float>::lowest();
  return torch::full(allowed.sizes(), masked, torch::TensorOptions().dtype(dtype).device(device))
      .masked_fill_(allowed, 0.0)
      .unsqueeze(1);
}

}  // namespace

// True when SDPA's is_causal equals the additive mask at every real (unpadded) query: no window
// narrower than the sequence, and every row's padding on the right (training and scoring batches
// pad there), since then a real query's causal keys are all real. Pad queries differ, but nothing
// reads them (losses select real positions). Left padding (generation) keeps the mask.
bool CausalLMImpl::causal_mask_is_exact(const torch::Tensor& attention_mask, int64_t T) const {
  if (!PERCETRAIN_SDPA) return false;  // the grouped attention always takes its mask
  if (config_.sliding_window > 0 && config_.sliding_window < T) return false;
  const auto m = attention_mask.ne(0).to(torch::kInt);
  return T < 2 || m.narrow(1, 1, T - 1).le(m.narrow(1, 0, T - 1)).all().item<bool>();
}

torch::Tensor CausalLMImpl::hidden_states(const torch::Tensor& input_ids,
                                          const torch::Tensor& attention_mask,
                                          const torch::Tensor& position_ids) {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be [B, T]");
  const int64_t T = input_ids.size(1);
  auto x = model->embed_tokens(input_ids);  // [B, T, C]
  const auto dtype = x.scalar_type();
  const auto device = x.device();

  const Rope rope = rope_tables(inv_freq_, position_ids, dtype, device);
  // One additive mask [B, 1, T, T] for all layers. A finite minimum keeps fully masked rows
  // (queries on left padding) finite. Where plain causal attention gives the same result at every
  // real position, no mask at all (SDPA's is_causal).
  const auto mask = causal_mask_is_exact(attention_mask, T)
                        ? torch::Tensor()
                        : additive_mask(attention_mask, 0, T, config_.sliding_window, dtype, device);

  const bool checkpoint = gradient_checkpointing_ && torch::GradMode::is_enabled();
  for (const auto& layer : *model->layers) {
    auto* decoder_layer = layer->as<DecoderLayer>();
    x = checkpoint ? checkpointed_layer_forward(*decoder_layer, x, rope, mask)
                   : decoder_layer->forward(x, rope, mask);
  }
  return model->norm(x);
}


torch::Tensor CausalLMImpl::forward_step(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                         const torch::Tensor& position_ids, KVCache& cache) {
  TORCH_CHECK(input_ids.dim() == 2 && attention_mask.dim() == 2 && position_ids.dim() == 2,
              "forward_step expects input_ids and position_ids [B, t], attention_mask [B, S + t]");
  const int64_t t = input_ids.size(1), S = cache.length;
  TORCH_CHECK(attention_mask.size(1) == S + t, "forward_step: attention_mask covers ",
              attention_mask.size(1), " positions, expected ", S + t, " (cached + new)");
  const size_t layers = model->layers->size();
  cache.keys.resize(layers);
  cache.values.resize(layers);
  auto x = model->embed_tokens(input_ids);  // [B, t, C]
  const Rope rope = rope_tables(inv_freq_, position_ids, x.scalar_type(), x.device());
  auto mask = additive_mask(attention_mask, S, t, config_.sliding_window, x.scalar_type(), x.device());
  for (size_t i = 0; i < layers; ++i)
    x = model->layers[i]->as<DecoderLayer>()->forward_cached(x, rope, mask, cache, i);
  cache.length = S + t;
  return model->norm(x);
}

// ---------------------------------------------------------------------------------------------
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// log softmax(hidden @ weight^T)[target] for N rows, chunk by chunk. Backward recomputes each
// chunk's logits from the saved hidden rows and log-sum-exp, so memory stays O(chunk * V).
struct ChunkedTargetLogprobs : public torch::autograd::Function<ChunkedTargetLogprobs> {
  // hidden: [N, C], weight: [V, C], targets: [N] -> [N] in fp32 (fp64 for fp64 models).
  // When `entropy` is given it receives the predictive entropy of each row (no gradient).
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor hidden, torch::Tensor weight,
                               torch::Tensor targets, int64_t chunk, torch::Tensor* entropy) {
    const int64_t N = hidden.size(0);
    const auto loss_dtype = loss_dtype_for(hidden);
    auto out = torch::empty({N}, hidden.options().dtype(loss_dtype));
    auto lse = torch::empty({N}, hidden.options().dtype(loss_dtype));
    if (entropy) *entropy = torch::empty({N}, hidden.options().dtype(loss_dtype));
    for (int64_t start = 0; start < N; start += chunk) {
      const int64_t end = std::min(N, start + chunk);
      auto logits = torch::matmul(hidden.slice(0, start, end), weight.t()).to(loss_dtype);
      auto chunk_lse = logits.logsumexp(-1, /*keepdim=*/true);
      auto picked = logits.gather(1, targets.slice(0, start, end).unsqueeze(1));
      out.slice(0, start, end).copy_((picked - chunk_lse).squeeze(1));
      lse.slice(0, start, end).copy_(chunk_lse.squeeze(1));
      if (entropy) {  // H = -sum p log p, with log p = logits - lse
        auto logp = logits.sub_(chunk_lse);
        entropy->slice(0, start, end).copy_(-(logp.exp() * logp).sum(-1));
      }
    }
    ctx->save_for_backward({hidden, weight, targets, lse});
    ctx->saved_data["chunk"] = chunk;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    auto hidden = saved[0], weight = saved[1], targets = saved[2], lse = saved[3];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const auto loss_dtype = lse.scalar_type();
    auto grad_out = grad_outputs[0].to(loss_dtype);
    const int64_t N = hidden.size(0);
    auto grad_hidden = torch::empty_like(hidden);
    // Accumulate the weight gradient in fp32 (or fp64) even for bf16 models.
    auto grad_weight = torch::zeros(weight.sizes(), weight.options().dtype(loss_dtype));
    for (int64_t start = 0; start < N; start += chunk) {
      const int64_t end = std::min(N, start + chunk);
      auto h = hidden.slice(0, start, end);
      auto g = grad_out.slice(0, start, end).unsqueeze(1);  // [n, 1]
      auto logits = torch::matmul(h, weight.t()).to(loss_dtype);
      // d logp[target] / d logits = onehot(target) - softmax(logits)
      auto grad_logits = (logits - lse.slice(0, start, end).unsqueeze(1)).exp_().mul_(-g);
      grad_logits.scatter_add_(1, targets.slice(0, start, end).unsqueeze(1), g);
      auto grad_logits_c = grad_logits.to(hidden.scalar_type());
      grad_hidden.slice(0, start, end).copy_(torch::matmul(grad_logits_c, weight));
      grad_weight.addmm_(grad_logits.t(), h.to(loss_dtype));
    }
    return {grad_hidden, grad_weight.to(weight.scalar_type()), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }

  static c10::ScalarType loss_dtype_for(const torch::Tensor& t) {
    return t.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat32;
  }
};

}  // namespace

torch::Tensor CausalLMImpl::selected_logprobs(const torch::Tensor& hidden, const torch::Tensor& targets,
                                              const torch::Tensor& select, int64_t chunk_tokens,
                                              torch::Tensor* entropy) {
  TORCH_CHECK(hidden.dim() == 3 && targets.dim() == 2 && select.dim() == 2,
              "selected_logprobs expects hidden [B, T, C], targets and select [B, T]");
  const int64_t B = hidden.size(0), T = hidden.size(1), C = hidden.size(2);
  auto rows = select.reshape({-1}).to(torch::kBool).nonzero().squeeze(1);  // [N], row-major
  auto flat_targets = targets.reshape({-1}).index_select(0, rows);
  if (flat_targets.numel() > 0) {
    const int64_t lo = flat_targets.min().item<int64_t>(), hi = flat_targets.max().item<int64_t>();
    if (lo < 0 || hi >= config_.vocab_size)
      fail("target_logprobs", "token id " + std::to_string(lo < 0 ? lo : hi) +
                                  " is outside the vocabulary of " +
                                  std::to_string(config_.vocab_size) + " ids",
           "does the tokenizer belong to this model?");
  }
  if (chunk_tokens <= 0) {
    // Each chunk holds about two [n, V] fp32 temporaries (logits and their softmax gradient);
    // keep them within 256 MiB, e.g. ~220 positions at V = 151,936.
    constexpr int64_t kLossBudgetBytes = int64_t{256} << 20;
    chunk_tokens = std::max<int64_t>(1, kLossBudgetBytes / (2 * 4 * config_.vocab_size));
  }
  return ChunkedTargetLogprobs::apply(hidden.reshape({B * T, C}).index_select(0, rows), output_weight(),
                                      flat_targets, chunk_tokens, entropy);
}

torch::Tensor CausalLMImpl::target_logprobs(const torch::Tensor& hidden, const torch::Tensor& targets,
                                            const torch::Tensor& select, int64_t chunk_tokens) {
  const int64_t B = hidden.size(0), T = hidden.size(1);
  auto picked = selected_logprobs(hidden, targets, select, chunk_tokens);
  auto rows = select.reshape({-1}).to(torch::kBool).nonzero().squeeze(1);
  auto out = torch::zeros({B * T}, picked.options());
  return out.index_copy(0, rows, picked).view({B, T});
}

torch::Tensor CausalLMImpl::next_token_logprobs(const torch::Tensor& input_ids,
                                                const torch::Tensor& attention_mask) {
  const int64_t T = input_ids.size(1);
  auto hidden = hidden_states(input_ids, attention_mask, position_ids_from_mask(attention_mask));
  auto real = attention_mask.to(hidden.device()).to(torch::kBool);
  auto select = real.slice(1, 0, T - 1).logical_and(real.slice(1, 1, T));
  return target_logprobs(hidden.slice(1, 0, T - 1), input_ids.slice(1, 1, T), select);
}

void init_weights(CausalLMImpl& model, uint64_t seed, double std) {
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(seed);
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    auto& param = item.value();
    auto ends_with = [&](const std::string& suffix) {
      return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends_with("norm.weight")) {
      param.fill_(1.0);
    } else if (ends_with(".bias")) {
      param.zero_();
    } else {
      auto values = torch::empty(param.sizes(), torch::kFloat32);
      values.normal_(0.0, std, generator);
      param.copy_(values);
    }
  }
}

}  // namespace percetrain
