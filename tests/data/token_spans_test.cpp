// response_token_spans: spans reproduce each token's text from `output`, for SentencePiece (the
// demo tokenizer, byte fallback included) and for a byte-level tokenizer that splits multi-byte
// characters across tokens.
#include <gtest/gtest.h>

#include <filesystem>

#include "percetrain/data/dataset.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "test_util.hpp"

namespace percetrain {
namespace {

// A byte-level tokenizer as byte-level BPE decodes: ids 0..255 are bytes, 256.. are merges
// listed in `merges`; decode concatenates the bytes and replaces each invalid or incomplete
// UTF-8 sequence by U+FFFD (what tokenizers' decode does with `errors="replace"`). 300 = EOS.
class ByteTokenizer : public Tokenizer {
 public:
  explicit ByteTokenizer(std::vector<std::string> merges) : merges_(std::move(merges)) { eos_id_ = 300; }
  std::vector<int> encode(const std::string& text, bool) const override {
    std::vector<int> ids;
    size_t i = 0;
    while (i < text.size()) {
      int best = -1;
      size_t best_len = 0;
      for (size_t m = 0; m < merges_.size(); ++m)
        if (merges_[m].size() > best_len && text.compare(i, merges_[m].size(), merges_[m]) == 0) {
          best = static_cast<int>(256 + m);
          best_len = merges_[m].size();
        }
      if (best < 0) {
        ids.push_back(static_cast<unsigned char>(text[i]));
        ++i;
      } else {
        ids.push_back(best);
        i += best_len;
      }
    }
    return ids;
  }
  std::string decode(const std::vector<int>& ids, bool) const override {
    std::string bytes;
    for (int id : ids) bytes += bytes_of(id);
    std::string out;
    for (size_t i = 0; i < bytes.size();) {
      const auto c = static_cast<unsigned char>(bytes[i]);
      const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
      bool ok = len > 0 && i + len <= bytes.size();
      for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(bytes[i + k]) >> 6) == 2;
      if (ok) {
        out += bytes.substr(i, len);
        i += len;
      } else {
        out += "\xEF\xBF\xBD";
        ++i;
      }
    }
    return out;
  }
  std::string id_to_piece(int id) const override { return bytes_of(id); }
  int piece_to_id(const std::string&) const override { return -1; }
  int vocab_size() const override { return 301; }
  bool is_special(int id) const override { return id == 300; }

 private:
  std::string bytes_of(int id) const {
    if (id < 256) return std::string(1, static_cast<char>(id));
    if (id == 300) return "";
    return merges_[static_cast<size_t>(id - 256)];
  }
  std::vector<std::string> merges_;
};

PairedExample example_for(const Tokenizer& tok, const std::string& text) {
  PairedExample e;
  e.response_text = text;
  std::vector<int> ids = tok.encode(text, false);
  ids.push_back(tok.eos_id());
  e.personalised = {1, 5, 7};
  e.personalised.insert(e.personalised.end(), ids.begin(), ids.end());
  e.counterfactual = e.personalised;
  e.response_length = static_cast<int32_t>(ids.size());
  return e;
}

void expect_contiguous(const std::vector<std::pair<int64_t, int64_t>>& spans, const std::string& text) {
  ASSERT_FALSE(spans.empty());
  EXPECT_EQ(spans.front().first, 0);
  EXPECT_EQ(spans.back().second, static_cast<int64_t>(text.size()));
  for (size_t t = 1; t < spans.size(); ++t) EXPECT_EQ(spans[t].first, spans[t - 1].second) << "token " << t;
}

TEST(TokenSpans, ByteLevelSplitCharactersBelongToTheTokenThatCompletesThem) {
  // "é" = C3 A9, "☕" = E2 98 95, "😀" = F0 9F 98 80. Merges put the first bytes of ☕ and 😀
  // into tokens of their own, so those characters are split across tokens.
  ByteTokenizer tok({" caf", "\xC3\xA9", " \xE2\x98", "\x95 ok", "\xF0\x9F", " na"});
  const std::string text = "Le caf\xC3\xA9 \xE2\x98\x95 ok na\xC3\xAFve \xF0\x9F\x98\x80!";
  const auto e = example_for(tok, text);
  const auto spans = response_token_spans(tok, e);
  ASSERT_EQ(spans.size(), static_cast<size_t>(e.response_length));
  expect_contiguous(spans, text);
  const std::vector<int> ids(e.personalised.end() - e.response_length, e.personalised.end());
  std::string joined;
  for (size_t t = 0; t < spans.size(); ++t) {
    const std::string piece = text.substr(spans[t].first, spans[t].second - spans[t].first);
    joined += piece;
    const std::string bytes = tok.id_to_piece(ids[t]);
    if (bytes.empty()) continue;
    // A token whose bytes are whole characters owns exactly them; one that ends inside a
    // character owns nothing; one that completes a character owns the whole character.
    const bool starts_inside = (static_cast<unsigned char>(bytes[0]) >> 6) == 2;
    const std::string decoded = tok.decode({ids[t]}, true);
    if (!starts_inside && decoded.find("\xEF\xBF\xBD") == std::string::npos) {
      EXPECT_EQ(piece, bytes) << "token " << t;
    }
  }
  EXPECT_EQ(joined, text);
  // " \xE2\x98" ends inside ☕: empty span at the character's start (after the space? no: the
  // token also carries the space, which is whole, but the token's decode ends in U+FFFD, so the
  // whole token waits and the next one, "\x95 ok", gets " ☕ ok").
  size_t split = 0;
  while (ids[split] != 256 + 2) ++split;
  EXPECT_EQ(spans[split].first, spans[split].second);
  EXPECT_EQ(text.substr(spans[split + 1].first, spans[split + 1].second - spans[split + 1].first), " \xE2\x98\x95 ok");
  // 😀 is F0 9F (one token) + 98 + 80 (byte tokens): the last byte's token owns all four bytes.
  size_t emoji = 0;
  while (ids[emoji] != 256 + 4) ++emoji;
  EXPECT_EQ(spans[emoji].first, spans[emoji].second);
  EXPECT_EQ(spans[emoji + 1].first, spans[emoji + 1].second);
  EXPECT_EQ(text.substr(spans[emoji + 2].first, spans[emoji + 2].second - spans[emoji + 2].first), "\xF0\x9F\x98\x80");
  // EOS: an empty span at the end.
  EXPECT_EQ(spans.back().first, static_cast<int64_t>(text.size()));
}

void check_sentencepiece_spans(const Tokenizer* tok) {
  // ASCII, and characters the demo vocabulary lacks (byte fallback splits them into byte pieces).
  for (const std::string& text : {std::string("Great tent. Rock on, bargain hunters."),
                                 std::string("Caf\xC3\xA9 na\xC3\xAFve \xE2\x98\x95 \xF0\x9F\x98\x80 ok"),
                                 std::string("x")}) {
    SCOPED_TRACE(text);
    const auto e = example_for(*tok, text);
    const auto spans = response_token_spans(*tok, e);
    ASSERT_EQ(spans.size(), static_cast<size_t>(e.response_length));
    expect_contiguous(spans, text);
    const std::vector<int> ids(e.personalised.end() - e.response_length, e.personalised.end());
    // Each span is what its token adds to the decoded prefix (the first piece's dummy-prefix
    // space is not in the text), and a span never cuts a UTF-8 character.
    std::string decoded_before;
    for (size_t t = 0; t < spans.size(); ++t) {
      const std::string piece = text.substr(spans[t].first, spans[t].second - spans[t].first);
      for (int64_t b : {spans[t].first, spans[t].second})
        if (b < static_cast<int64_t>(text.size())) {
          EXPECT_NE(static_cast<unsigned char>(text[b]) >> 6, 2u) << t;
        }
      const std::string decoded = tok->decode(std::vector<int>(ids.begin(), ids.begin() + t + 1), true);
      if (decoded.find("\xEF\xBF\xBD") == std::string::npos) {
        EXPECT_EQ(decoded_before + piece, decoded) << "token " << t;
        decoded_before = decoded;
      } else {
        EXPECT_TRUE(piece.empty()) << "token " << t << " ends inside a character";
      }
    }
  }
}

TEST(TokenSpans, SentencePieceSpansReproduceTheDecodedText) {
  auto demo = load_tokenizer((testing_util::source_dir() / "data" / "tokenizer").string());
  check_sentencepiece_spans(demo.get());
}

// Its own suite: CTest reports it skipped where ../shared is absent, and TokenSpans as passed.
TEST(TokenSpansLlama2, SentencePieceSpansReproduceTheDecodedText) {
  const auto llama2 = testing_util::shared_fixtures_dir() / "llama2-tokenizer.model";
  if (!std::filesystem::exists(llama2)) GTEST_SKIP() << llama2 << " is absent (the real Llama 2 tokenizer)";
  check_sentencepiece_spans(load_tokenizer(llama2.string()).get());
}

}  // namespace
}  // namespace percetrain
