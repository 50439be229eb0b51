// Loss weights read from records (token_weights, weighted_spans) and the word heads of
// pir_scope word, on the demo SentencePiece tokenizer.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "percetrain/data/dataset.hpp"
#include "percetrain/data/pairing.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace percetrain {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing_util::ScratchDir;
using testing_util::source_dir;

const Tokenizer& weights_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = load_tokenizer((source_dir() / "data" / "tokenizer").string());
  return *tok;
}

DataConfig weights_review_config() {
  DataConfig c;
  c.preset = "longlamp_product_review";
  apply_data_preset(c.preset, &c);
  return c;
}

const std::string kWeightsOutput = "Great kettle. Cheers from the porch!";

json weights_record(const json& extra = json::object()) {
  json r = {{"id", "r1"},
            {"input", "Generate the review text for a product with description \"A red kettle.\"."},
            {"output", kWeightsOutput},
            {"profile", json::array({{{"overall", 4.0}, {"summary", "Nice"}, {"reviewText", "Cheers from the porch!"}}})}};
  for (const auto& [k, v] : extra.items()) r[k] = v;
  return r;
}

// The examples of one JSONL file holding `records`; strict mode, so a bad record throws.
std::vector<PairedExample> load_weighted(const std::vector<json>& records) {
  const ScratchDir dir("percetrain-weights");
  std::string text;
  for (const auto& r : records) text += r.dump() + "\n";
  const fs::path file = dir / "data.jsonl";
  std::ofstream(file, std::ios::binary) << text;
  return load_paired_examples(weights_review_config(), file.string(), "", weights_tokenizer(), nullptr);
}

std::string weights_load_error(const json& r) {
  try {
    load_weighted({r});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

int64_t weights_text_tokens() { return static_cast<int64_t>(weights_tokenizer().encode(kWeightsOutput, false).size()); }

TEST(TokenWeights, OnePerResponseTokenOrPerTextTokenWithTheEndIdsLeftToTheDefault) {
  const int64_t n = weights_text_tokens();
  ASSERT_GT(n, 4);
  std::vector<double> per_text, per_response;
  for (int64_t i = 0; i < n; ++i) per_text.push_back(0.25 * static_cast<double>(i));
  per_response = per_text;
  per_response.push_back(3.0);  // EOS
  const auto examples = load_weighted({weights_record({{"token_weights", per_text}}), weights_record({{"token_weights", per_response}}), weights_record()});
  ASSERT_EQ(examples.size(), 3u);
  ASSERT_EQ(examples[0].response_length, n + 1);  // the demo config appends EOS
  ASSERT_EQ(examples[0].token_weights.size(), static_cast<size_t>(n + 1));
  for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(examples[0].token_weights[i], 0.25f * static_cast<float>(i));
  EXPECT_TRUE(std::isnan(examples[0].token_weights[n])) << "EOS without a weight takes the default";
  EXPECT_FLOAT_EQ(examples[1].token_weights[n], 3.0f);
  EXPECT_TRUE(examples[2].token_weights.empty()) << "a record without weights has none";
}

TEST(TokenWeights, WeightedSpansGiveOverlappingTokensTheLargestWeight) {
  const size_t kettle = kWeightsOutput.find("kettle"), porch = kWeightsOutput.find("porch");
  const auto examples = load_weighted({weights_record({{"weighted_spans", json::array({json::array({kettle, kettle + 6, 2.5}),
                                                                        json::array({kettle + 3, porch + 5, 0.5}),
                                                                        json::array({0, 0, 9.0})})}})});
  ASSERT_EQ(examples.size(), 1u);
  const auto& e = examples[0];
  const auto spans = response_token_spans(weights_tokenizer(), e);
  ASSERT_EQ(e.token_weights.size(), spans.size());
  int in_kettle = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    const auto [s, t] = spans[i];
    const bool a = s < static_cast<int64_t>(kettle + 6) && static_cast<int64_t>(kettle) < t;
    const bool b = s < static_cast<int64_t>(porch + 5) && static_cast<int64_t>(kettle + 3) < t;
    const float w = e.token_weights[i];
    if (a) {
      EXPECT_FLOAT_EQ(w, 2.5f) << i;
      ++in_kettle;
    } else if (b) {
      EXPECT_FLOAT_EQ(w, 0.5f) << i;
    } else {
      EXPECT_TRUE(std::isnan(w)) << i << ": outside every span (the empty span [0, 0) overlaps nothing)";
    }
  }
  EXPECT_GT(in_kettle, 0);
  EXPECT_TRUE(std::isnan(e.token_weights.back())) << "EOS has no text, so no span covers it";
}

TEST(TokenWeights, BadWeightsAreRecordErrorsNamingTheField) {
  const int64_t n = weights_text_tokens();
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"token_weights", std::vector<double>(static_cast<size_t>(n + 3), 1.0)}},
       "token_weights: has " + std::to_string(n + 3) + " weights, but the output is " + std::to_string(n) + " tokens (" +
           std::to_string(n + 1) + " with the end-of-response ids)"},
      {{{"token_weights", json::array({1.0, -0.5})}}, "token_weights[1]: must be a finite number >= 0, got -0.5"},
      {{{"token_weights", json::array({1.0, "x"})}}, "token_weights[1]: must be a finite number >= 0"},
      {{{"token_weights", 2.0}}, "token_weights: is not a list"},
      {{{"token_weights", json::array({1.0})}, {"weighted_spans", json::array()}},
       "weighted_spans: is given together with token_weights"},
      {{{"weighted_spans", json::array({json::array({0, 400, 1.0})})}},
       "weighted_spans[0]: must be [start, end, weight] with byte offsets 0 <= start <= end <= " +
           std::to_string(kWeightsOutput.size())},
      {{{"weighted_spans", json::array({json::array({3, 1, 1.0})})}}, "weighted_spans[0]: must be [start, end, weight]"},
      {{{"weighted_spans", json::array({json::array({0, 2})})}}, "weighted_spans[0]: must be [start, end, weight]"},
      {{{"weighted_spans", json::array({json::array({0, 2, -1})})}}, "weighted_spans[0]: its weight must be a finite number >= 0"},
  };
  for (const auto& [extra, expected] : cases) {
    const std::string error = weights_load_error(weights_record(extra));
    EXPECT_NE(error.find(expected), std::string::npos) << extra.dump() << " -> " << error;
  }
}

TEST(WordHeads, APieceStartingWithASpaceStartsAWordAndTheRestPointToIt) {
  auto examples = load_weighted({weights_record(), weights_record({{"output", "Unbelievably überzeugend kettles,\nreally."}})});
  attach_word_heads(weights_tokenizer(), &examples);
  for (const auto& e : examples) {
    ASSERT_EQ(e.word_heads.size(), static_cast<size_t>(e.response_length));
    const auto spans = response_token_spans(weights_tokenizer(), e);
    // Independently of token_words: walk the text; a token whose text starts with whitespace, or
    // follows one that ended with whitespace, starts a word; empty-text tokens join the next one.
    int32_t head = -1;
    bool previous_space = false;
    std::vector<int32_t> waiting;
    for (size_t i = 0; i < spans.size(); ++i) {
      const std::string text = e.response_text.substr(spans[i].first, spans[i].second - spans[i].first);
      if (text.empty()) {
        waiting.push_back(static_cast<int32_t>(i));
        continue;
      }
      if (head < 0 || std::isspace(static_cast<unsigned char>(text[0])) || previous_space)
        head = waiting.empty() ? static_cast<int32_t>(i) : waiting.front();
      waiting.clear();
      previous_space = std::isspace(static_cast<unsigned char>(text.back()));
      if (text.find_first_not_of(" \n") == std::string::npos) {
        EXPECT_EQ(e.word_heads[i], static_cast<int32_t>(i)) << "whitespace alone is no word";
        head = -1;
        continue;
      }
      EXPECT_EQ(e.word_heads[i], head) << e.response_text << " token " << i << " '" << text << "'";
    }
    for (int32_t i : waiting) EXPECT_EQ(e.word_heads[i], i) << "trailing EOS is in no word";
  }
  // At least one word of several pieces, or the test proves nothing.
  int continuations = 0;
  for (const auto& e : examples)
    for (size_t i = 0; i < e.word_heads.size(); ++i) continuations += e.word_heads[i] != static_cast<int32_t>(i);
  EXPECT_GT(continuations, 3);
}

}  // namespace
}  // namespace percetrain
