// The CPU kernels for RMSNorm and RoPE against the LibTorch composition they replace: outputs
// and gradients, fp32 and fp64, shapes whose rows do not fill the kernels' 8-wide accumulators.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

#include "percetrain/model/fused_ops.hpp"

namespace percetrain {
namespace {

struct FusedGrads {
  torch::Tensor out;
  std::vector<torch::Tensor> grads;
};

// Output and input gradients of `f` for a fixed random upstream gradient.
template <typename F>
FusedGrads run_with_grads(F f, std::vector<torch::Tensor> inputs, const torch::Tensor& upstream_seed) {
  for (auto& t : inputs) t = t.detach().clone().requires_grad_(true);
  auto out = f(inputs);
  auto upstream = upstream_seed.to(out.scalar_type()).expand_as(out);
  (out * upstream).sum().backward();
  FusedGrads r{out.detach(), {}};
  for (auto& t : inputs) r.grads.push_back(t.grad());
  return r;
}

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double tol, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double err = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
  const double scale = b.to(torch::kDouble).abs().max().item<double>();
  EXPECT_LE(err, tol * std::max(1.0, scale)) << what << ": max abs error " << err;
}

TEST(FusedOps, RmsNormMatchesTheCompositionForwardAndBackward) {
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    for (int64_t C : {64, 37, 512}) {
      torch::manual_seed(C);
      auto opts = torch::TensorOptions().dtype(dtype);
      auto x = torch::randn({3, 41, C}, opts) * 3.0;
      auto w = torch::randn({C}, opts);
      auto upstream = torch::randn({3, 41, C}, opts);
      const double tol = dtype == torch::kFloat32 ? 2e-5 : 1e-12;
      auto fused = run_with_grads([](auto& in) { return rms_norm(in[0], in[1], 1e-6); }, {x, w}, upstream);
      auto ref = run_with_grads([](auto& in) { return rms_norm_reference(in[0], in[1], 1e-6); }, {x, w}, upstream);
      const std::string tag = std::string(c10::toString(dtype)) + " C=" + std::to_string(C);
      expect_close(fused.out, ref.out, tol, "output " + tag);
      expect_close(fused.grads[0], ref.grads[0], tol, "dx " + tag);
      expect_close(fused.grads[1], ref.grads[1], tol, "dweight " + tag);
    }
  }
}

TEST(FusedOps, RmsNormOfANonContiguousInputMatches) {
  torch::manual_seed(3);
  auto x = torch::randn({8, 5, 64}).transpose(0, 1);  // [5, 8, 64], not contiguous
  auto w = torch::randn({64});
  expect_close(rms_norm(x, w, 1e-5), rms_norm_reference(x, w, 1e-5), 2e-5, "non-contiguous");
}

TEST(FusedOps, RopeHeadsMatchesTheCompositionForwardAndBackward) {
  const int64_t B = 2, T = 7, H = 6;
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    for (int64_t D : {8, 64}) {
      for (auto [scale, groups] : {std::pair{1.0, int64_t{1}}, std::pair{0.125, int64_t{3}}}) {
        torch::manual_seed(D);
        auto opts = torch::TensorOptions().dtype(dtype);
        auto x = torch::randn({B, T, H * D}, opts);
        // Per-sequence tables, as padded batches have: different positions in each row.
        auto angles = torch::rand({B, 1, T, D / 2}, opts) * 6.0;
        angles = torch::cat({angles, angles}, -1);
        auto cos = angles.cos(), sin = angles.sin();
        auto upstream = torch::randn({B, H / groups, T * groups, D}, opts);
        const double tol = dtype == torch::kFloat32 ? 2e-6 : 1e-13;
        auto fused =
            run_with_grads([&](auto& in) { return rope_heads(in[0], H, cos, sin, scale, groups); }, {x}, upstream);
        auto ref = run_with_grads([&](auto& in) { return rope_heads_reference(in[0], H, cos, sin, scale, groups); },
                                  {x}, upstream);
        const std::string tag = std::string(c10::toString(dtype)) + " D=" + std::to_string(D) +
                                " scale=" + std::to_string(scale) + " groups=" + std::to_string(groups);
        EXPECT_TRUE(fused.out.is_contiguous()) << tag;
        expect_close(fused.out, ref.out, tol, "output " + tag);
        expect_close(fused.grads[0], ref.grads[0], tol, "dx " + tag);
      }
    }
  }
}

TEST(FusedOps, RopeHeadsRotatesInTheRotateHalfLayout) {
  // One head, D = 4, angle pi/2 everywhere: (x1, x2, x3, x4) -> (-x3, -x4, x1, x2).
  auto x = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({1, 1, 4});
  auto cos = torch::zeros({1, 1, 1, 4}), sin = torch::ones({1, 1, 1, 4});
  auto out = rope_heads(x, 1, cos, sin, 1.0).flatten();
  expect_close(out, torch::tensor({-3.0f, -4.0f, 1.0f, 2.0f}), 1e-7, "rotate half");
}

TEST(FusedOps, SwigluMatchesTheCompositionForwardAndBackward) {
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    torch::manual_seed(5);
    auto opts = torch::TensorOptions().dtype(dtype);
    // Gates from -100 to 100: sigmoid saturates at both ends without overflowing.
    auto gate = torch::cat({torch::randn({3, 70001}, opts) * 4.0, torch::linspace(-100, 100, 3 * 51, opts).view({3, 51})}, 1);
    auto up = torch::randn_like(gate);
    auto upstream = torch::randn_like(gate);
    const double tol = dtype == torch::kFloat32 ? 2e-6 : 1e-13;
    auto fused = run_with_grads([](auto& in) { return swiglu(in[0], in[1]); }, {gate, up}, upstream);
    auto ref = run_with_grads([](auto& in) { return swiglu_reference(in[0], in[1]); }, {gate, up}, upstream);
    const std::string tag = c10::toString(dtype);
    expect_close(fused.out, ref.out, tol, "output " + tag);
    expect_close(fused.grads[0], ref.grads[0], tol, "d gate " + tag);
    expect_close(fused.grads[1], ref.grads[1], tol, "d up " + tag);
  }
}

TEST(FusedOps, MaskedSoftmaxMatchesTheCompositionForwardAndBackward) {
  const int64_t B = 2, KV = 2, G = 3, T = 9, S = 13;  // S > T: cached keys, as in generation
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    torch::manual_seed(11);
    auto opts = torch::TensorOptions().dtype(dtype);
    auto scores = torch::randn({B, KV, T, G, S}, opts) * 4.0;
    // Causal over the last T keys, the first key of batch row 1 padded, and one query row whose
    // keys are all masked (a padded query position): softmax then spreads evenly, as LibTorch's.
    const double lowest = dtype == torch::kFloat32 ? std::numeric_limits<float>::lowest()
                                                   : std::numeric_limits<double>::lowest();
    auto allowed = torch::ones({T, S}, torch::kBool).tril(S - T).unsqueeze(0).repeat({B, 1, 1});
    allowed.index_put_({1, torch::indexing::Slice(), 0}, false);
    allowed.index_put_({1, 0}, false);
    auto mask = torch::zeros({B, 1, T, S}, opts).masked_fill(allowed.logical_not().unsqueeze(1), lowest);
    auto upstream = torch::randn({B, KV, T, G, S}, opts);
    const double tol = dtype == torch::kFloat32 ? 2e-6 : 1e-13;
    auto fused = run_with_grads([&](auto& in) { return masked_softmax(in[0], mask); }, {scores}, upstream);
    auto ref = run_with_grads([&](auto& in) { return masked_softmax_reference(in[0], mask); }, {scores}, upstream);
    const std::string tag = c10::toString(dtype);
    expect_close(fused.out, ref.out, tol, "probabilities " + tag);
    expect_close(fused.grads[0], ref.grads[0], tol, "d scores " + tag);
    EXPECT_EQ(fused.out.index({0, 0, 0, 0, torch::indexing::Slice(S - T + 1)}).abs().sum().item<double>(), 0.0)
        << "masked keys get exactly zero probability";
  }
}

TEST(FusedOps, TheSwitchSelectsTheComposition) {
  ASSERT_TRUE(fused_kernels_enabled());
  auto x = torch::randn({4, 16}, torch::requires_grad());
  auto w = torch::randn({16});
  EXPECT_NE(rms_norm(x, w, 1e-6).grad_fn()->name().find("RmsNormFunction"), std::string::npos);
  set_fused_kernels_enabled(false);
  const auto name = rms_norm(x, w, 1e-6).grad_fn()->name();
  set_fused_kernels_enabled(true);
  EXPECT_EQ(name.find("RmsNormFunction"), std::string::npos) << name;
}

}  // namespace
}  // namespace percetrain
