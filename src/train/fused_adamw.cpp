// FusedAdamW::step: LibTorch's AdamW update (decoupled weight decay, bias-corrected moments)
// as one loop per parameter, on the state objects LibTorch's AdamW keeps.
#include "percetrain/train/fused_adamw.hpp"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <cmath>
#include <sstream>
#include <type_traits>

namespace percetrain {
namespace {

// The key of a parameter in Optimizer::state_: the TensorImpl address, printed (LibTorch 1.x)
// or as the pointer itself (later versions), whichever the map is declared with.
template <typename Map>
typename Map::key_type state_key(const Map&, const at::Tensor& p) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream out;
    out << p.unsafeGetTensorImpl();
    return out.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

bool fusable(const at::Tensor& p) {
  const auto& g = p.grad();
  return p.device().is_cpu() && (p.scalar_type() == at::kFloat || p.scalar_type() == at::kDouble) &&
         p.is_contiguous() && !g.is_sparse() && g.scalar_type() == p.scalar_type() && g.is_contiguous();
}

// The element-wise update in the order LibTorch applies its ops, with the constants rounded to
// the parameter's dtype as LibTorch's scalar arguments are:
//   p *= 1 - lr * wd;  m = m * b1 + (1 - b1) * g;  v = v * b2 + (1 - b2) * g * g;
//   p += -lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
template <typename T>
void adamw_update(T* p, const T* g, T* m, T* v, int64_t n, T decay, T beta1, T one_minus_beta1, T beta2,
                  T one_minus_beta2, T step_size, T sqrt_bias_correction2, T eps) {
  at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T grad = g[i];
      const T param = p[i] * decay;
      const T m_i = m[i] * beta1 + one_minus_beta1 * grad;
      const T v_i = v[i] * beta2 + one_minus_beta2 * grad * grad;
      m[i] = m_i;
      v[i] = v_i;
      p[i] = param + step_size * (m_i / (std::sqrt(v_i) / sqrt_bias_correction2 + eps));
    }
  });
}

}  // namespace

torch::Tensor FusedAdamW::step(LossClosure closure) {
  for (const auto& group : param_groups_) {
    if (static_cast<const torch::optim::AdamWOptions&>(group.options()).amsgrad())
      return torch::optim::AdamW::step(std::move(closure));
    for (const auto& p : group.params())
      if (p.grad().defined() && !fusable(p)) return torch::optim::AdamW::step(std::move(closure));
  }
  at::NoGradGuard no_grad;
  at::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    const double beta1 = std::get<0>(options.betas()), beta2 = std::get<1>(options.betas());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = state_[state_key(state_, p)];
      if (!slot) {
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->step(0);
        fresh->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
        fresh->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& state = static_cast<torch::optim::AdamWParamState&>(*slot);
      state.step(state.step() + 1);
      const double bias_correction1 = 1 - std::pow(beta1, state.step());
      const double bias_correction2 = 1 - std::pow(beta2, state.step());
      const auto& grad = p.grad();
      AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "fused_adamw", [&] {
        adamw_update<scalar_t>(p.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(),
                               state.exp_avg().data_ptr<scalar_t>(), state.exp_avg_sq().data_ptr<scalar_t>(),
                               p.numel(), static_cast<scalar_t>(1 - options.lr() * options.weight_decay()),
                               static_cast<scalar_t>(beta1), static_cast<scalar_t>(1 - beta1),
                               static_cast<scalar_t>(beta2), static_cast<scalar_t>(1 - beta2),
                               static_cast<scalar_t>(-options.lr() / bias_correction1),
                               static_cast<scalar_t>(std::sqrt(bias_correction2)),
                               static_cast<scalar_t>(options.eps()));
      });
    }
  }
  return loss;
}

}  // namespace percetrain
