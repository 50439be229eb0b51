// The CUDA paths against the CPU: a small model's log-probs (padded batches too), gradients and a
// bf16 forward on the GPU follow the CPU's fp32 numbers, and peak memory comes from the caching
// allocator. Every test skips with one line where no CUDA device is visible (CPU builds, and CUDA
// builds on machines without a GPU); scripts/gpu_check.sh runs them on a GPU machine.
#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "percetrain/model/hf_folder.hpp"
#include "percetrain/util/device.hpp"
#include "test_util.hpp"

using namespace percetrain;

#define REQUIRE_CUDA()                                                                             \
  if (!torch::cuda::is_available())                                                               \
  GTEST_SKIP() << "no CUDA device visible (this binary: " << build_summary()                      \
               << "); the CUDA tests run on a GPU machine, see scripts/gpu_check.sh"

namespace {

CausalLM cuda_test_model(const std::string& arch) {
  ModelConfig c = preset_model_config(arch, "tiny", 101);
  c.num_hidden_layers = 2;
  CausalLM model(c);
  init_weights(*model, 11, 0.2);
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters())
    if (p.key().find("norm") != std::string::npos) p.value().uniform_(0.5, 1.5);
  return model;
}

// A batch with a right-padded, a full and a left-padded row, so both attention paths run.
std::pair<torch::Tensor, torch::Tensor> padded_batch() {
  torch::manual_seed(5);
  auto ids = torch::randint(3, 101, {3, 16}, torch::kLong);
  auto mask = torch::ones({3, 16}, torch::kLong);
  mask[0].slice(0, 10, 16).fill_(0);
  mask[2].slice(0, 0, 6).fill_(0);
  return {ids, mask};
}

}  // namespace

class CudaTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    // fp32 means fp32: TF32 products (10-bit mantissa) would differ from the CPU by ~1e-3.
    at::globalContext().setAllowTF32CuBLAS(false);
  }
};

TEST_P(CudaTest, LogprobsAndGradientsEqualTheCpu) {
  REQUIRE_CUDA();
  const auto [all_ids, all_mask] = padded_batch();
  // Rows 0-1 alone are right padded (SDPA's is_causal path); with row 2, the mask's path.
  for (const int64_t rows : {int64_t{2}, int64_t{3}}) {
    auto cpu = cuda_test_model(GetParam());
    auto gpu = cuda_test_model(GetParam());
    gpu->to(torch::Device(torch::kCUDA, 0));
    const auto ids = all_ids.slice(0, 0, rows), mask = all_mask.slice(0, 0, rows);
    auto lp_cpu = cpu->next_token_logprobs(ids, mask);
    auto lp_gpu = gpu->next_token_logprobs(ids.cuda(), mask.cuda());
    const double worst = (lp_gpu.cpu() - lp_cpu).abs().max().item<double>();
    std::printf("%s, %lld rows: log-probs CUDA vs CPU, worst |diff| %.3g\n", GetParam().c_str(),
                static_cast<long long>(rows), worst);
    EXPECT_LT(worst, 1e-4);

    lp_cpu.sum().backward();
    lp_gpu.sum().backward();
    const auto p_gpu = gpu->named_parameters();
    double worst_grad = 0;
    for (const auto& p : cpu->named_parameters()) {
      const auto& g = p.value().grad();
      const auto diff = (p_gpu[p.key()].grad().cpu() - g).abs().max() / g.abs().max().clamp_min(1e-12);
      worst_grad = std::max(worst_grad, diff.item<double>());
    }
    std::printf("%s, %lld rows: gradients CUDA vs CPU, worst difference relative to each tensor's largest entry %.3g\n",
                GetParam().c_str(), static_cast<long long>(rows), worst_grad);
    EXPECT_LT(worst_grad, 1e-3);
  }
}

TEST_P(CudaTest, Bfloat16FollowsFloat32) {
  REQUIRE_CUDA();
  auto reference = cuda_test_model(GetParam());
  auto bf16 = cuda_test_model(GetParam());
  bf16->to(torch::Device(torch::kCUDA, 0), torch::kBFloat16);
  torch::NoGradGuard no_grad;
  const auto [ids, mask] = padded_batch();
  auto expected = reference->next_token_logprobs(ids, mask);
  auto got = bf16->next_token_logprobs(ids.cuda(), mask.cuda()).cpu().to(torch::kFloat);
  ASSERT_TRUE(got.isfinite().all().item<bool>());
  const double mean = (got - expected).abs().mean().item<double>();
  std::printf("%s: bf16 CUDA vs fp32 CPU log-probs, mean |diff| %.3g, worst %.3g\n", GetParam().c_str(), mean,
              (got - expected).abs().max().item<double>());
  EXPECT_LT(mean, 0.05);
}

TEST(Cuda, PeakMemoryComesFromTheCachingAllocator) {
  REQUIRE_CUDA();
  const torch::Device device(torch::kCUDA, 0);
  reset_peak_memory(device);
  auto big = torch::empty({64, 1024, 1024}, torch::TensorOptions().device(device));  // 256 MiB
  EXPECT_GE(peak_memory_mib(device), 256.0);
  EXPECT_EQ(parse_device("auto"), device);
}

INSTANTIATE_TEST_SUITE_P(Architectures, CudaTest, ::testing::Values("llama", "mistral", "qwen2", "qwen3"));
