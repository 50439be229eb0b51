// FusedAdamW against LibTorch's AdamW: the same parameters after several steps (two groups, one
// with weight decay), and optimizer checkpoints that load into either.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "percetrain/train/fused_adamw.hpp"

namespace percetrain {
namespace {

std::vector<torch::Tensor> adamw_params(int64_t seed, torch::Dtype dtype) {
  torch::manual_seed(seed);
  return {torch::randn({37, 19}, dtype).requires_grad_(true), torch::randn({100000}, dtype).requires_grad_(true),
          torch::randn({5}, dtype).requires_grad_(true)};
}

std::vector<torch::optim::OptimizerParamGroup> adamw_groups(const std::vector<torch::Tensor>& params) {
  auto options = [](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(3e-3).betas({0.9, 0.95}).eps(1e-8).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{params[0], params[1]}, options(0.1));
  groups.emplace_back(std::vector<torch::Tensor>{params[2]}, options(0.0));
  return groups;
}

// Gradients that depend on the step and on the parameters (so that drift would compound).
void set_adamw_grads(std::vector<torch::Tensor>& params, int step) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i)
    params[i].mutable_grad() = torch::sin(params[i] * (step + 1) + static_cast<double>(i)) * 0.01;
}

double max_relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

TEST(FusedAdamW, FollowsLibTorchAdamW) {
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    auto fused_params = adamw_params(7, dtype);
    auto reference_params = adamw_params(7, dtype);
    FusedAdamW fused(adamw_groups(fused_params), torch::optim::AdamWOptions(3e-3));
    torch::optim::AdamW reference(adamw_groups(reference_params), torch::optim::AdamWOptions(3e-3));
    for (int step = 0; step < 20; ++step) {
      set_adamw_grads(fused_params, step);
      set_adamw_grads(reference_params, step);
      fused.step();
      reference.step();
    }
    const double tolerance = dtype == torch::kFloat32 ? 1e-6 : 1e-14;
    for (size_t i = 0; i < fused_params.size(); ++i) {
      EXPECT_LT(max_relative_difference(fused_params[i], reference_params[i]), tolerance) << "parameter " << i;
      // And the parameters did move: the comparison is not between two untouched tensors.
      EXPECT_GT(max_relative_difference(fused_params[i], adamw_params(7, dtype)[i]), 1e-3) << "parameter " << i;
    }
  }
}

TEST(FusedAdamW, CheckpointsMoveBetweenItAndLibTorchAdamW) {
  auto fused_params = adamw_params(3, torch::kFloat32);
  auto reference_params = adamw_params(3, torch::kFloat32);
  FusedAdamW fused(adamw_groups(fused_params), torch::optim::AdamWOptions(3e-3));
  for (int step = 0; step < 5; ++step) {
    set_adamw_grads(fused_params, step);
    fused.step();
  }
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < fused_params.size(); ++i) reference_params[i].copy_(fused_params[i]);
  }
  std::stringstream saved;
  torch::save(fused, saved);
  torch::optim::AdamW reference(adamw_groups(reference_params), torch::optim::AdamWOptions(3e-3));
  torch::load(reference, saved);
  for (int step = 5; step < 10; ++step) {
    set_adamw_grads(fused_params, step);
    set_adamw_grads(reference_params, step);
    fused.step();
    reference.step();
  }
  // Without the moments and step counts carried over, the bias correction alone would differ.
  for (size_t i = 0; i < fused_params.size(); ++i)
    EXPECT_LT(max_relative_difference(fused_params[i], reference_params[i]), 1e-6) << "parameter " << i;
}

}  // namespace
}  // namespace percetrain
