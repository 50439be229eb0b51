// Synthetic paired examples for trainer tests: each example's user has a token that sits three
// times in the profile and at every other response position, so the profile raises that token's
// log-probability and PerContrast has something to find.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "percetrain/data/dataset.hpp"

namespace percetrain::testing_util {

// Where the ids come from: user tokens first_user .. first_user + 4, prompt tokens
// first_prompt + [0, prompt_span), other response tokens first_response + [0, response_span).
// BOS is 1 and EOS 2; every id stays below the largest of these ranges' ends.
struct SyntheticTokens {
  int first_user = 100, first_prompt = 200, prompt_span = 50, first_response = 300, response_span = 50;
};

inline std::vector<PairedExample> synthetic_examples(int count, uint64_t seed, const SyntheticTokens& ids = {}) {
  std::mt19937_64 rng(seed);
  std::vector<PairedExample> out;
  for (int i = 0; i < count; ++i) {
    PairedExample e;
    e.id = "ex" + std::to_string(i);
    const int user_token = ids.first_user + i % 5;
    std::vector<int32_t> prompt = {1}, profile(3, user_token), response;
    for (int k = 0; k < 2 + static_cast<int>(rng() % 4); ++k)
      prompt.push_back(ids.first_prompt + static_cast<int>(rng() % ids.prompt_span));
    for (int k = 0; k < 2 + static_cast<int>(rng() % 5); ++k)
      response.push_back(k % 2 ? user_token : ids.first_response + static_cast<int>(rng() % ids.response_span));
    response.push_back(2);
    e.personalised = prompt;
    e.personalised.insert(e.personalised.begin() + 1, profile.begin(), profile.end());
    e.personalised.insert(e.personalised.end(), response.begin(), response.end());
    e.counterfactual = prompt;
    e.counterfactual.insert(e.counterfactual.end(), response.begin(), response.end());
    e.response_length = static_cast<int32_t>(response.size());
    out.push_back(e);
  }
  return out;
}

}  // namespace percetrain::testing_util
