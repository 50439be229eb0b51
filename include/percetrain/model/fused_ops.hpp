// Fused forward and backward kernels for the decoder's memory-bound chains (RMSNorm, RoPE with
// the head transpose, SwiGLU, masked softmax) on the CPU, where each unfused LibTorch op is a pass
// over memory; other devices and dtypes take the plain LibTorch composition, which is also the
// tests' reference.
#pragma once

#include <ATen/core/Tensor.h>

namespace percetrain {

// Whether the CPU kernels (and the causal blocks of the decoder's grouped attention) are used
// (default yes; PERCETRAIN_FUSED_KERNELS=0 in the environment turns them off, to measure what
// they save or to rule them out when debugging).
bool fused_kernels_enabled();
void set_fused_kernels_enabled(bool enabled);

// x: [..., C], weight: [C] -> [..., C]: weight * (x / sqrt(mean(x^2) + eps)), reduced in fp32
// (fp64 for fp64 inputs) and cast back before the weight, as Hugging Face's LlamaRMSNorm does.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor rms_norm_reference(const at::Tensor& x, const at::Tensor& weight, double eps);

// Rotary embedding in Hugging Face's rotate-half layout, applied to a projection's output and
// moved to the layout attention wants, times `scale` (the attention scale folded into the
// queries, or 1). x: [B, T, H * D], cos/sin: [B, 1, T, D] -> [B, H / G, T * G, D] contiguous,
// where head h = kv * G + g lands in block kv, row t * G + g: the G query heads that share a kv
// head, position by position. G = 1 is the plain head-major [B, H, T, D].
at::Tensor rope_heads(const at::Tensor& x, int64_t heads, const at::Tensor& cos, const at::Tensor& sin,
                      double scale, int64_t groups = 1);
at::Tensor rope_heads_reference(const at::Tensor& x, int64_t heads, const at::Tensor& cos,
                                const at::Tensor& sin, double scale, int64_t groups = 1);

// The SwiGLU gate: silu(gate) * up, element-wise, any equal shapes.
at::Tensor swiglu(const at::Tensor& gate, const at::Tensor& up);
at::Tensor swiglu_reference(const at::Tensor& gate, const at::Tensor& up);

// Attention probabilities: softmax over the last dimension of scores + mask, the mask broadcast
// over kv heads and groups. scores: [B, KV, T, G, S], mask: additive [B, 1, T, S] -> [B, KV, T, G, S]
at::Tensor masked_softmax(const at::Tensor& scores, const at::Tensor& mask);
at::Tensor masked_softmax_reference(const at::Tensor& scores, const at::Tensor& mask);

}  // namespace percetrain
