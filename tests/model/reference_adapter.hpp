// Checks an adapter folder against scripts/make_model_goldens.py --check-adapter, the float64
// plain-PyTorch reference: it reads the folder with PEFT's key names and computes the golden
// inputs' log-probs with W + (alpha / r) B A; `model` (the base with the adapter applied by
// percetrain) must give the same.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "percetrain/io/safetensors.hpp"
#include "percetrain/model/decoder.hpp"
#include "test_util.hpp"

namespace percetrain::testing_util {

inline void expect_reference_reads_adapter(CausalLMImpl& model, const std::filesystem::path& adapter,
                                           const std::filesystem::path& base, int expected_tensors) {
  SafetensorsFile inputs((base / "golden.safetensors").string());
  torch::NoGradGuard no_grad;
  auto ours = model.next_token_logprobs(inputs.load("input_ids", torch::kLong), inputs.load("attention_mask", torch::kLong));
  const auto r = run_command("/usr/bin/python3 " + (source_dir() / "scripts" / "make_model_goldens.py").string() +
                                 " --check-adapter " + adapter.string() + " --base " + base.string(),
                             /*with_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto result = nlohmann::json::parse(r.output);
  EXPECT_EQ(result["tensors"], expected_tensors);
  const auto theirs = result["logprobs"].get<std::vector<std::vector<double>>>();
  ASSERT_EQ(theirs.size(), static_cast<size_t>(ours.size(0)));
  double err = 0.0;
  for (int64_t b = 0; b < ours.size(0); ++b)
    for (int64_t t = 0; t < ours.size(1); ++t) err = std::max(err, std::abs(ours[b][t].item<double>() - theirs[b][t]));
  EXPECT_LT(err, 2e-5);
}

}  // namespace percetrain::testing_util
