// Collation of paired examples (both sequences' response tokens align) and the seeded step order.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
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

TEST(Batching, RecordWeightsAndWordHeadsFollowTheFlattenedTokens) {
  auto examples = examples_with_profiles(3, 5);
  // Example 0: weights for its response, word heads [0 0 2 2 ...]; example 1: neither; example 2:
  // a response whose first token cannot be scored (nothing precedes it in either sequence).
  auto& a = examples[0];
  for (int32_t j = 0; j < a.response_length; ++j) {
    a.token_weights.push_back(0.5f * static_cast<float>(j));
    a.word_heads.push_back(j - j % 2);
  }
  auto& c = examples[2];
  c.response_length = 4;
  c.personalised = {7, 8, 9, 10};
  c.counterfactual = {7, 8, 9, 10};
  c.word_heads = {0, 0, 2, 2};  // token 1's head is token 0, which is not scored
  ASSERT_EQ(scored_response_tokens(c), 3);

  auto batch = collate_paired(examples, {0, 1, 2}, 0, torch::kCPU, true);
  const int64_t na = a.response_length, nb = examples[1].response_length;
  ASSERT_EQ(batch.response_tokens, na + nb + 3);
  ASSERT_TRUE(batch.data_weights.defined());
  ASSERT_TRUE(batch.word_head.defined());
  auto w = batch.data_weights.accessor<float, 1>();
  auto h = batch.word_head.accessor<int64_t, 1>();
  for (int64_t j = 0; j < na; ++j) {
    EXPECT_FLOAT_EQ(w[j], 0.5f * static_cast<float>(j));
    EXPECT_EQ(h[j], j - j % 2);
  }
  for (int64_t j = 0; j < nb; ++j) {
    EXPECT_TRUE(std::isnan(w[na + j])) << "no record weight: NaN";
    EXPECT_EQ(h[na + j], na + j) << "no word heads: the token's own";
  }
  const int64_t o = na + nb;  // example 2's scored tokens are its response tokens 1, 2, 3
  EXPECT_EQ(h[o + 0], o + 0) << "a head cut off with the unscored token leaves the token its own";
  EXPECT_EQ(h[o + 1], o + 1);
  EXPECT_EQ(h[o + 2], o + 1);

  // Without weights or heads in any example, neither tensor exists.
  auto plain = examples_with_profiles(2, 6);
  auto plain_batch = collate_paired(plain, {0, 1}, 0, torch::kCPU, false);
  EXPECT_FALSE(plain_batch.data_weights.defined());
  EXPECT_FALSE(plain_batch.word_head.defined());
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
