// Collation of paired examples (both sequences' response tokens align) and the seeded step order.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <random>
#include <vector>

#include "percetrain/pass/batching.hpp"

using namespace percetrain;

namespace {

// Examples of varied lengths whose response follows a profile of 3 tokens and a short prompt.
std::vector<PairedExample> examples_with_profiles(int count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<PairedExample> out;
  for (int i = 0; i < count; ++i) {
    PairedExample e;
    e.id = "ex" + std::to_string(i);
    std::vector<int32_t> prompt = {1}, response;
    for (int k = 0; k < 2 + static_cast<int>(rng() % 4); ++k) prompt.push_back(200 + static_cast<int>(rng() % 50));
    for (int k = 0; k < 2 + static_cast<int>(rng() % 5); ++k) response.push_back(300 + static_cast<int>(rng() % 50));
    response.push_back(2);
    e.personalised = prompt;
    e.personalised.insert(e.personalised.begin() + 1, {100, 101, 102});
    e.personalised.insert(e.personalised.end(), response.begin(), response.end());
    e.counterfactual = prompt;
    e.counterfactual.insert(e.counterfactual.end(), response.begin(), response.end());
    e.response_length = static_cast<int32_t>(response.size());
    out.push_back(e);
  }
  return out;
}

TEST(Batching, SelectionsAlignTheResponseTokensOfBothSequences) {
  auto examples = examples_with_profiles(5, 3);
  auto batch = collate_paired(examples, {0, 1, 2, 3, 4}, 0, torch::kCPU, true);
  auto targets_with = batch.personalised_ids.slice(1, 1).masked_select(batch.personalised_select);
  auto targets_without = batch.counterfactual_ids.slice(1, 1).masked_select(batch.counterfactual_select);
  EXPECT_TRUE(torch::equal(targets_with, targets_without));
  int64_t expected = 0;
  std::vector<int64_t> response_ids;
  for (const auto& e : examples) {
    expected += e.response_length;
    response_ids.insert(response_ids.end(), e.personalised.end() - e.response_length, e.personalised.end());
  }
  EXPECT_EQ(batch.response_tokens, expected);
  EXPECT_TRUE(torch::equal(targets_with, torch::tensor(response_ids, torch::kLong)));
  EXPECT_EQ(batch.sequence.size(0), expected);
}

TEST(Batching, EpochOrderIsSeededAndCoversEveryExampleOnce) {
  auto a = epoch_steps(23, 5, 7, 0), b = epoch_steps(23, 5, 7, 0), c = epoch_steps(23, 5, 7, 1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::vector<size_t> all;
  for (const auto& s : a) all.insert(all.end(), s.begin(), s.end());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i);
  EXPECT_EQ(a.size(), 5u);
  EXPECT_EQ(a.back().size(), 3u);
}

}  // namespace
