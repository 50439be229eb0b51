// CPU kernels for RMSNorm, RoPE, SwiGLU and the masked softmax: one pass forward and one
// backward, where the LibTorch composition makes 5-10 passes over the activations each way.
#include "percetrain/model/fused_ops.hpp"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

// Hot float loops are compiled twice, for x86-64-v3 (AVX2 + FMA: 8 floats a vector) and the
// baseline, and picked at load time by the CPU (GCC's target_clones); ATen does the same for its
// own kernels. Other compilers and CPUs get the baseline only.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define PERCETRAIN_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PERCETRAIN_CPU_CLONES
#endif
#define PERCETRAIN_ALWAYS_INLINE inline __attribute__((always_inline))

namespace percetrain {
namespace {

std::atomic<bool>& fused_flag() {
  static std::atomic<bool> flag{[] {
    const char* env = std::getenv("PERCETRAIN_FUSED_KERNELS");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }()};
  return flag;
}

bool fusable(const at::Tensor& t) {
  return fused_kernels_enabled() && t.device().is_cpu() &&
         (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble);
}

// Rows per parallel task so that a task touches at least ~32k elements.
int64_t grain_rows(int64_t row_elements) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, row_elements)); }

// Sum of x[i] * y[i] with 16 independent accumulators (of type Acc), so that the compiler can
// keep them in vector registers instead of one long chain of dependent additions.
template <typename Acc, typename T>
PERCETRAIN_ALWAYS_INLINE Acc dot(const T* x, const T* y, int64_t n) {
  constexpr int kLanes = 16;
  Acc acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += static_cast<Acc>(x[i + j]) * static_cast<Acc>(y[i + j]);
  Acc sum = 0;
  for (; i < n; ++i) sum += static_cast<Acc>(x[i]) * static_cast<Acc>(y[i]);
  for (Acc a : acc) sum += a;
  return sum;
}

// ---------------------------------------------------------------------------------------------
class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  // x: [N, C] contiguous, weight: [C] -> y: [N, C]; saves 1/rms per row.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x_in,
                            const at::Tensor& weight_in, double eps) {
    RECORD_FUNCTION("percetrain::rms_norm", std::vector<c10::IValue>{});
    auto x = x_in.contiguous();
    auto weight = weight_in.contiguous();
    const int64_t C = x.size(-1), N = x.numel() / C;
    auto y = at::empty_like(x);
    auto inv_rms = at::empty({N}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rms_norm_forward", [&] {
      const scalar_t* xp = x.data_ptr<scalar_t>();
      const scalar_t* wp = weight.data_ptr<scalar_t>();
      scalar_t* yp = y.data_ptr<scalar_t>();
      scalar_t* rp = inv_rms.data_ptr<scalar_t>();
      at::parallel_for(0, N, grain_rows(C), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const scalar_t* xr = xp + r * C;
          scalar_t* yr = yp + r * C;
          const auto s = static_cast<scalar_t>(1.0 / std::sqrt(dot<double>(xr, xr, C) / C + eps));
          rp[r] = s;
          for (int64_t c = 0; c < C; ++c) yr[c] = wp[c] * (xr[c] * s);
        }
      });
    });
    ctx->save_for_backward({x, weight, inv_rms});
    return y;
  }

  // dx = s * (dxhat - xhat * mean(dxhat * xhat)) with xhat = x * s, dxhat = dy * weight;
  // dweight = sum over rows of dy * xhat, accumulated per block of rows and then added up.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    RECORD_FUNCTION("percetrain::rms_norm_backward", std::vector<c10::IValue>{});
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &inv_rms = saved[2];
    auto dy = grads[0].contiguous();
    const int64_t C = x.size(-1), N = x.numel() / C;
    auto dx = at::empty_like(x);
    const int64_t blocks = std::min<int64_t>(N, 4 * at::get_num_threads());
    auto dweight_partial = at::zeros({blocks, C}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rms_norm_backward", [&] {
      const scalar_t* xp = x.data_ptr<scalar_t>();
      const scalar_t* wp = weight.data_ptr<scalar_t>();
      const scalar_t* rp = inv_rms.data_ptr<scalar_t>();
      const scalar_t* gp = dy.data_ptr<scalar_t>();
      scalar_t* dxp = dx.data_ptr<scalar_t>();
      scalar_t* dwp = dweight_partial.data_ptr<scalar_t>();
      at::parallel_for(0, blocks, 1, [&](int64_t block_begin, int64_t block_end) {
        std::vector<scalar_t> dxhat(C);
        for (int64_t b = block_begin; b < block_end; ++b) {
          scalar_t* dw = dwp + b * C;
          for (int64_t r = b * N / blocks; r < (b + 1) * N / blocks; ++r) {
            const scalar_t* xr = xp + r * C;
            const scalar_t* gr = gp + r * C;
            scalar_t* dxr = dxp + r * C;
            const scalar_t s = rp[r];
            for (int64_t c = 0; c < C; ++c) {
              dxhat[c] = gr[c] * wp[c];
              dw[c] += gr[c] * (xr[c] * s);
            }
            const auto m = static_cast<scalar_t>(dot<double>(dxhat.data(), xr, C) * s / C);
            for (int64_t c = 0; c < C; ++c) dxr[c] = s * (dxhat[c] - (xr[c] * s) * m);
          }
        }
      });
    });
    return {dx, dweight_partial.sum(0), at::Tensor()};
  }
};

// ---------------------------------------------------------------------------------------------
// out[b, h, t, i] = scale * (x[b, t, h, i] * cos[b, t, i] + rotate_half(x[b, t, h])[i] * sin[b, t, i])
// with rotate_half(v) = (-v[D/2:], v[:D/2]). Its adjoint, used in backward, is the same map with
// sin negated, read and written in the opposite layouts.
template <typename T>
void rope_rows(const T* in, T* out, const T* cos, const T* sin, int64_t B, int64_t T_len, int64_t H,
               int64_t G, int64_t D, T scale, bool adjoint) {
  const int64_t half = D / 2;
  at::parallel_for(0, B * T_len, grain_rows(H * D), [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt) {
      const int64_t b = bt / T_len, t = bt % T_len;
      const T* c = cos + bt * D;
      const T* s = sin + bt * D;
      for (int64_t h = 0; h < H; ++h) {
        const int64_t token_major = (bt * H + h) * D;          // [B, T, H, D]
        const int64_t head_major = (((b * (H / G) + h / G) * T_len + t) * G + h % G) * D;  // [B, KV, T * G, D]
        if (!adjoint) {
          const T* v = in + token_major;
          T* o = out + head_major;
          for (int64_t i = 0; i < half; ++i) o[i] = scale * (v[i] * c[i] - v[i + half] * s[i]);
          for (int64_t i = half; i < D; ++i) o[i] = scale * (v[i] * c[i] + v[i - half] * s[i]);
        } else {
          const T* g = in + head_major;
          T* o = out + token_major;
          for (int64_t i = 0; i < half; ++i) o[i] = scale * (g[i] * c[i] + g[i + half] * s[i + half]);
          for (int64_t i = half; i < D; ++i) o[i] = scale * (g[i] * c[i] - g[i - half] * s[i - half]);
        }
      }
    }
  });
}

class RopeHeadsFunction : public torch::autograd::Function<RopeHeadsFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x_in, int64_t heads,
                            int64_t groups, const at::Tensor& cos_in, const at::Tensor& sin_in, double scale) {
    RECORD_FUNCTION("percetrain::rope_heads", std::vector<c10::IValue>{});
    const int64_t B = x_in.size(0), T = x_in.size(1), D = x_in.size(2) / heads;
    auto x = x_in.contiguous();
    auto cos = cos_in.expand({B, 1, T, D}).contiguous();
    auto sin = sin_in.expand({B, 1, T, D}).contiguous();
    auto out = at::empty({B, heads / groups, T * groups, D}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rope_heads_forward", [&] {
      rope_rows<scalar_t>(x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), cos.data_ptr<scalar_t>(),
                          sin.data_ptr<scalar_t>(), B, T, heads, groups, D, static_cast<scalar_t>(scale), false);
    });
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    RECORD_FUNCTION("percetrain::rope_heads_backward", std::vector<c10::IValue>{});
    const auto saved = ctx->get_saved_variables();
    const auto &cos = saved[0], &sin = saved[1];
    const int64_t heads = ctx->saved_data["heads"].toInt(), groups = ctx->saved_data["groups"].toInt();
    const double scale = ctx->saved_data["scale"].toDouble();
    auto g = grads[0].contiguous();  // [B, KV, T * G, D]
    const int64_t B = g.size(0), T = g.size(2) / groups, D = g.size(3);
    auto dx = at::empty({B, T, heads * D}, g.options());
    AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "rope_heads_backward", [&] {
      rope_rows<scalar_t>(g.data_ptr<scalar_t>(), dx.data_ptr<scalar_t>(), cos.data_ptr<scalar_t>(),
                          sin.data_ptr<scalar_t>(), B, T, heads, groups, D, static_cast<scalar_t>(scale), true);
    });
    return {dx, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// ---------------------------------------------------------------------------------------------
// exp(v[i]) in place for v[i] <= 0 (softmax arguments x - max), in a form the compiler
// vectorises (a libm call per element would not be): exp(d) = 2^n * exp(r) with n = round(d /
// ln 2), |r| <= ln(2) / 2, and exp(r) by its Taylor series to r^7 (truncation below 1e-8
// relative). Arguments under -87 (results below fp32's normal range) give 0.
PERCETRAIN_ALWAYS_INLINE void exp_nonpositive(float* v, int64_t n) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2High = 0.693359375f;  // ln 2 split so that n * kLn2High is exact
  constexpr float kLn2Low = -2.12194440054690583e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  for (int64_t i = 0; i < n; ++i) {
    const float d = v[i] < -87.0f ? -87.0f : v[i];
    const float k = (d * kLog2e + kRound) - kRound;
    const float r = (d - k * kLn2High) - k * kLn2Low;
    float e = 1.0f / 5040.0f;
    e = e * r + 1.0f / 720.0f;
    e = e * r + 1.0f / 120.0f;
    e = e * r + 1.0f / 24.0f;
    e = e * r + 1.0f / 6.0f;
    e = e * r + 0.5f;
    e = e * r + 1.0f;
    e = e * r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;  // 2^k
    float two_k;
    std::memcpy(&two_k, &bits, sizeof(two_k));
    v[i] = v[i] < -87.0f ? 0.0f : e * two_k;
  }
}
PERCETRAIN_ALWAYS_INLINE void exp_nonpositive(double* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) v[i] = std::exp(v[i]);
}

template <typename T>
PERCETRAIN_ALWAYS_INLINE T max_of(const T* x, int64_t n) {
  constexpr int kLanes = 16;
  T lanes[kLanes];
  std::fill(lanes, lanes + kLanes, -std::numeric_limits<T>::infinity());
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] = x[i + j] > lanes[j] ? x[i + j] : lanes[j];
  T out = -std::numeric_limits<T>::infinity();
  for (; i < n; ++i) out = x[i] > out ? x[i] : out;
  for (T l : lanes) out = l > out ? l : out;
  return out;
}

template <typename T>
PERCETRAIN_ALWAYS_INLINE T sum_of(const T* x, int64_t n) {
  constexpr int kLanes = 16;
  T lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] += x[i + j];
  T out = 0;
  for (; i < n; ++i) out += x[i];
  for (T l : lanes) out += l;
  return out;
}

// f(begin, n) over [0, total) in blocks small enough that a kernel's several passes over a
// block stay in the L1 cache, the blocks shared among threads.
template <typename F>
void for_each_block(int64_t total, const F& f) {
  constexpr int64_t kBlock = 1024;
  at::parallel_for(0, (total + kBlock - 1) / kBlock, 32, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) f(b * kBlock, std::min(kBlock, total - b * kBlock));
  });
}

// sigmoid(g) = 1 / (1 + exp(-g)) = exp(g) / (1 + exp(g)), with exp of a non-positive argument.
template <typename T>
PERCETRAIN_ALWAYS_INLINE void sigmoid_into(const T* g, T* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) s[i] = g[i] < T(0) ? g[i] : -g[i];  // -|g|
  exp_nonpositive(s, n);                                               // e = exp(-|g|)
  for (int64_t i = 0; i < n; ++i) s[i] = (g[i] < T(0) ? s[i] : T(1)) / (T(1) + s[i]);
}

// y = silu(g) * u over one block.
template <typename T>
PERCETRAIN_ALWAYS_INLINE void swiglu_block_impl(const T* g, const T* u, T* y, int64_t n) {
  sigmoid_into(g, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] = g[i] * y[i] * u[i];
}
PERCETRAIN_CPU_CLONES void swiglu_block(const float* g, const float* u, float* y, int64_t n) {
  swiglu_block_impl(g, u, y, n);
}
void swiglu_block(const double* g, const double* u, double* y, int64_t n) { swiglu_block_impl(g, u, y, n); }

// d gate = dy * u * s * (1 + g * (1 - s)), d up = dy * g * s over one block, s = sigmoid(g).
template <typename T>
PERCETRAIN_ALWAYS_INLINE void swiglu_backward_block_impl(const T* g, const T* u, const T* dy, T* dg, T* du,
                                                         int64_t n) {
  sigmoid_into(g, dg, n);  // s first, then overwritten by the gradient
  for (int64_t i = 0; i < n; ++i) {
    const T s = dg[i];
    du[i] = dy[i] * (g[i] * s);
    dg[i] = dy[i] * u[i] * (s * (T(1) + g[i] * (T(1) - s)));
  }
}
PERCETRAIN_CPU_CLONES void swiglu_backward_block(const float* g, const float* u, const float* dy, float* dg,
                                                 float* du, int64_t n) {
  swiglu_backward_block_impl(g, u, dy, dg, du, n);
}
void swiglu_backward_block(const double* g, const double* u, const double* dy, double* dg, double* du,
                           int64_t n) {
  swiglu_backward_block_impl(g, u, dy, dg, du, n);
}

// One attention row: p = softmax(x + m) over the first `live` of S keys, 0 after them.
template <typename T>
PERCETRAIN_ALWAYS_INLINE void softmax_row_impl(const T* x, const T* m, T* p, int64_t live, int64_t S) {
  for (int64_t j = 0; j < live; ++j) p[j] = x[j] + m[j];
  const T max = max_of(p, live);
  for (int64_t j = 0; j < live; ++j) p[j] -= max;
  exp_nonpositive(p, live);
  const T inv = T(1) / sum_of(p, live);
  for (int64_t j = 0; j < live; ++j) p[j] *= inv;
  std::fill(p + live, p + S, T(0));
}
PERCETRAIN_CPU_CLONES void softmax_row(const float* x, const float* m, float* p, int64_t live, int64_t S) {
  softmax_row_impl(x, m, p, live, S);
}
void softmax_row(const double* x, const double* m, double* p, int64_t live, int64_t S) {
  softmax_row_impl(x, m, p, live, S);
}

// Its backward: ds = p * (g - sum(p * g)) over the live keys, 0 after them.
template <typename T>
PERCETRAIN_ALWAYS_INLINE void softmax_backward_row_impl(const T* p, const T* g, T* ds, int64_t live, int64_t S) {
  const T total = dot<T>(p, g, live);
  for (int64_t j = 0; j < live; ++j) ds[j] = p[j] * (g[j] - total);
  std::fill(ds + live, ds + S, T(0));
}
PERCETRAIN_CPU_CLONES void softmax_backward_row(const float* p, const float* g, float* ds, int64_t live, int64_t S) {
  softmax_backward_row_impl(p, g, ds, live, S);
}
void softmax_backward_row(const double* p, const double* g, double* ds, int64_t live, int64_t S) {
  softmax_backward_row_impl(p, g, ds, live, S);
}

class SwigluFunction : public torch::autograd::Function<SwigluFunction> {
 public:
  // y = g * sigmoid(g) * u; saves g and u only (LibTorch's composition also keeps silu(g)).
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& gate_in,
                            const at::Tensor& up_in) {
    RECORD_FUNCTION("percetrain::swiglu", std::vector<c10::IValue>{});
    auto gate = gate_in.contiguous(), up = up_in.contiguous();
    auto y = at::empty_like(gate);
    AT_DISPATCH_FLOATING_TYPES(gate.scalar_type(), "swiglu_forward", [&] {
      const scalar_t* gp = gate.data_ptr<scalar_t>();
      const scalar_t* up_p = up.data_ptr<scalar_t>();
      scalar_t* yp = y.data_ptr<scalar_t>();
      for_each_block(gate.numel(),
                     [&](int64_t begin, int64_t n) { swiglu_block(gp + begin, up_p + begin, yp + begin, n); });
    });
    ctx->save_for_backward({gate, up});
    return y;
  }

  // d gate = dy * u * s * (1 + g * (1 - s)), d up = dy * g * s, with s = sigmoid(g) recomputed.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    RECORD_FUNCTION("percetrain::swiglu_backward", std::vector<c10::IValue>{});
    const auto saved = ctx->get_saved_variables();
    const auto &gate = saved[0], &up = saved[1];
    auto dy = grads[0].contiguous();
    auto dgate = at::empty_like(gate), dup = at::empty_like(up);
    AT_DISPATCH_FLOATING_TYPES(gate.scalar_type(), "swiglu_backward", [&] {
      const scalar_t* gp = gate.data_ptr<scalar_t>();
      const scalar_t* up_p = up.data_ptr<scalar_t>();
      const scalar_t* dyp = dy.data_ptr<scalar_t>();
      scalar_t* dgp = dgate.data_ptr<scalar_t>();
      scalar_t* dup_p = dup.data_ptr<scalar_t>();
      for_each_block(gate.numel(), [&](int64_t begin, int64_t n) {
        swiglu_backward_block(gp + begin, up_p + begin, dyp + begin, dgp + begin, dup_p + begin, n);
      });
    });
    return {dgate, dup};
  }
};

class MaskedSoftmaxFunction : public torch::autograd::Function<MaskedSoftmaxFunction> {
 public:
  // Per row: x = scores + mask (rounded as the separate add would), p = exp(x - max) / sum.
  // Keys after a query's last visible one (the causal future: half of all keys) have p = 0
  // exactly, as in LibTorch's softmax, so they are neither read nor exponentiated, only zeroed;
  // their count per (batch row, query) is saved for backward. A query with no visible key at all
  // (a padded position) gets LibTorch's answer, the uniform distribution.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& scores_in,
                            const at::Tensor& mask_in) {
    RECORD_FUNCTION("percetrain::masked_softmax", std::vector<c10::IValue>{});
    auto scores = scores_in.contiguous();  // [B, KV, T, G, S]
    const int64_t B = scores.size(0), KV = scores.size(1), T = scores.size(2), G = scores.size(3),
                  S = scores.size(4);
    auto mask = mask_in.expand({B, 1, T, S}).contiguous();
    auto probs = at::empty_like(scores);
    auto live = at::empty({B * T}, at::kLong);  // keys [0, live) may be visible
    AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "masked_softmax_forward", [&] {
      const scalar_t* sp = scores.data_ptr<scalar_t>();
      const scalar_t* mp = mask.data_ptr<scalar_t>();
      scalar_t* pp = probs.data_ptr<scalar_t>();
      int64_t* lp = live.data_ptr<int64_t>();
      const scalar_t masked = std::numeric_limits<scalar_t>::lowest();
      for (int64_t bt = 0; bt < B * T; ++bt) {
        const scalar_t* m = mp + bt * S;
        int64_t end = S;
        while (end > 0 && m[end - 1] == masked) --end;
        lp[bt] = end == 0 ? S : end;  // nothing visible: all keys take part (uniform)
      }
      at::parallel_for(0, B * KV * T * G, grain_rows(S), [&](int64_t begin, int64_t stop) {
        for (int64_t row = begin; row < stop; ++row) {
          const int64_t bt = (row / (KV * T * G)) * T + (row / G) % T;
          softmax_row(sp + row * S, mp + bt * S, pp + row * S, lp[bt], S);
        }
      });
    });
    ctx->save_for_backward({probs, live});
    return probs;
  }

  // d scores = p * (dp - sum(p * dp)) per row over its live keys; zero after them (p = 0 there).
  // The mask gets no gradient.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    RECORD_FUNCTION("percetrain::masked_softmax_backward", std::vector<c10::IValue>{});
    const auto saved = ctx->get_saved_variables();
    const auto &probs = saved[0], &live = saved[1];
    auto dp = grads[0].contiguous();
    const int64_t KV = probs.size(1), T = probs.size(2), G = probs.size(3), S = probs.size(4);
    const int64_t rows = probs.numel() / S;
    auto dscores = at::empty_like(probs);
    AT_DISPATCH_FLOATING_TYPES(probs.scalar_type(), "masked_softmax_backward", [&] {
      const scalar_t* pp = probs.data_ptr<scalar_t>();
      const scalar_t* gp = dp.data_ptr<scalar_t>();
      const int64_t* lp = live.data_ptr<int64_t>();
      scalar_t* dsp = dscores.data_ptr<scalar_t>();
      at::parallel_for(0, rows, grain_rows(S), [&](int64_t begin, int64_t stop) {
        for (int64_t row = begin; row < stop; ++row) {
          const int64_t live_keys = lp[(row / (KV * T * G)) * T + (row / G) % T];
          softmax_backward_row(pp + row * S, gp + row * S, dsp + row * S, live_keys, S);
        }
      });
    });
    return {dscores, at::Tensor()};
  }
};

}  // namespace

bool fused_kernels_enabled() { return fused_flag().load(); }
void set_fused_kernels_enabled(bool enabled) { fused_flag().store(enabled); }

at::Tensor rms_norm_reference(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const auto reduce = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto x32 = x.to(reduce);
  auto normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (!fusable(x) || weight.scalar_type() != x.scalar_type()) return rms_norm_reference(x, weight, eps);
  return RmsNormFunction::apply(x, weight, eps);
}

at::Tensor rope_heads_reference(const at::Tensor& x, int64_t heads, const at::Tensor& cos,
                                const at::Tensor& sin, double scale, int64_t groups) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2) / heads;
  auto v = x.view({B, T, heads, D}).transpose(1, 2);  // [B, H, T, D]
  auto halves = v.chunk(2, -1);
  auto rotated = v * cos + at::cat({-halves[1], halves[0]}, -1) * sin;
  if (scale != 1.0) rotated = rotated * scale;
  if (groups == 1) return rotated.contiguous();
  return rotated.view({B, heads / groups, groups, T, D})
      .permute({0, 1, 3, 2, 4})
      .reshape({B, heads / groups, T * groups, D});
}

at::Tensor rope_heads(const at::Tensor& x, int64_t heads, const at::Tensor& cos, const at::Tensor& sin,
                      double scale, int64_t groups) {
  if (!fusable(x) || cos.scalar_type() != x.scalar_type())
    return rope_heads_reference(x, heads, cos, sin, scale, groups);
  return RopeHeadsFunction::apply(x, heads, groups, cos, sin, scale);
}

at::Tensor swiglu_reference(const at::Tensor& gate, const at::Tensor& up) { return at::silu(gate) * up; }

at::Tensor swiglu(const at::Tensor& gate, const at::Tensor& up) {
  if (!fusable(gate) || up.scalar_type() != gate.scalar_type() || up.sizes() != gate.sizes())
    return swiglu_reference(gate, up);
  return SwigluFunction::apply(gate, up);
}

at::Tensor masked_softmax_reference(const at::Tensor& scores, const at::Tensor& mask) {
  const auto reduce = scores.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return at::softmax(scores.add(mask.unsqueeze(3)), -1, reduce).to(scores.scalar_type());
}

at::Tensor masked_softmax(const at::Tensor& scores, const at::Tensor& mask) {
  if (!fusable(scores) || mask.scalar_type() != scores.scalar_type() || mask.requires_grad())
    return masked_softmax_reference(scores, mask);
  return MaskedSoftmaxFunction::apply(scores, mask);
}

}  // namespace percetrain
