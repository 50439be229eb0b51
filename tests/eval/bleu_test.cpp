// BLEU with sacrebleu's semantics: sacrebleu's own test vectors (test/test_bleu.py of
// github.com/mjpost/sacrebleu, noted per case) and hand-derived cases.
#include <gtest/gtest.h>

#include <cmath>

#include "percetrain/eval/metrics.hpp"

namespace percetrain::eval {
namespace {

using Tokens = std::vector<std::string>;

TEST(Bleu13a, TokenizesLikeMteval13a) {
  // Punctuation other than ' , - . is split off; "." and "," only when not between digits.
  EXPECT_EQ(bleu_tokenize_13a("It wasn't surprising."), (Tokens{"It", "wasn't", "surprising", "."}));
  EXPECT_EQ(bleu_tokenize_13a("3.14, and 1,000."), (Tokens{"3.14", ",", "and", "1,000", "."}));
  EXPECT_EQ(bleu_tokenize_13a("$1.50 (a/b)!"), (Tokens{"$", "1.50", "(", "a", "/", "b", ")", "!"}));
  // A dash is split after a digit only; entities are unescaped first, then split like the rest.
  EXPECT_EQ(bleu_tokenize_13a("5-3 well-known &amp; &quot;x&quot;"),
            (Tokens{"5", "-", "3", "well-known", "&", "\"", "x", "\""}));
  // "-\n" joins lines, other newlines become spaces; BLEU rstrips the segment first, so a trailing
  // "-\n" is kept as "-".
  EXPECT_EQ(bleu_tokenize_13a("end-\nnext line\nthird"), (Tokens{"endnext", "line", "third"}));
  EXPECT_EQ(bleu_tokenize_13a("word-\n"), (Tokens{"word-"}));
  // Matches never overlap: in "a.." the first rule takes "a." and the second "." is split by the
  // third rule (followed by a space), not the second.
  EXPECT_EQ(bleu_tokenize_13a("a.."), (Tokens{"a", ".", "."}));
  EXPECT_EQ(bleu_tokenize_13a("a.b <skipped>x"), (Tokens{"a", ".", "b", "x"}));
  EXPECT_EQ(bleu_tokenize_13a("caf\xC3\xA9.\xC2\xA0" "Ok"), (Tokens{"caf\xC3\xA9", ".", "Ok"}));  // NBSP splits
  EXPECT_TRUE(bleu_tokenize_13a("  \n ").empty());
}

TEST(Bleu, SacrebleuReadmeCorpusWithTwoReferenceStreams) {
  // sacrebleu test_corpus_bleu (default settings; also 'smooth_method': 'none'): 48.530827.
  // By hand: 13a tokens; segment 1 matches ref 1 exactly (6/5/4/3 of 6/5/4/3); segment 2 "It
  // wasn't surprising ." matches It and "." (2/0/0/0 of 4/3/2/1), closest ref length 5; segment 3
  // "The man had just bitten him ." matches 6/2/1/0 of 7/6/5/4 (The man had bitten him . / The man,
  // man had / The man had), closest ref length 7. Totals: c = 17, r = 18, correct 14/7/5/3 of
  // 17/14/11/8; BP = exp(1 - 18/17); BLEU = BP * (14/17 * 7/14 * 5/11 * 3/8)^(1/4) * 100.
  const std::vector<std::string> hyps = {"The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."};
  const std::vector<std::vector<std::string>> refs = {{"The dog bit the man.", "The dog had bit the man."},
                                                      {"It was not unexpected.", "No one was surprised."},
                                                      {"The man bit him first.", "The man had bitten the dog."}};
  const BleuScore s = corpus_bleu(hyps, refs);
  EXPECT_NEAR(s.score, 48.530827, 1e-6);
  EXPECT_NEAR(s.score, 100 * std::exp(1 - 18.0 / 17) * std::pow(14.0 / 17 * 7 / 14 * 5 / 11 * 3 / 8, 0.25), 1e-9);
  EXPECT_EQ(s.stats.sys_len, 17);
  EXPECT_EQ(s.stats.ref_len, 18);
  EXPECT_EQ(std::vector<int64_t>(s.stats.correct, s.stats.correct + 4), (std::vector<int64_t>{14, 7, 5, 3}));
  EXPECT_EQ(std::vector<int64_t>(s.stats.total, s.stats.total + 4), (std::vector<int64_t>{17, 14, 11, 8}));
  // sacrebleu: empty hypotheses are kept and score 0.0.
  EXPECT_EQ(corpus_bleu({"", "", ""}, refs).score, 0.0);
}

TEST(Bleu, SacrebleuStatisticsAndScoringVectors) {
  // test_statistics: "am I am a character sequence" vs "I am a symbol string sequence a a":
  // matches 4/2/1/0 of 6/5/4/3.
  const BleuStats st = bleu_segment_stats("am I am a character sequence", {"I am a symbol string sequence a a"});
  EXPECT_EQ(std::vector<int64_t>(st.correct, st.correct + 4), (std::vector<int64_t>{4, 2, 1, 0}));
  EXPECT_EQ(std::vector<int64_t>(st.total, st.total + 4), (std::vector<int64_t>{6, 5, 4, 3}));
  // With 'exp' smoothing the empty 4-gram order gets 100 / (2 * 3); BP = exp(1 - 8/6):
  // exp(1 - 8/6) * (66.667 * 40 * 25 * 16.667)^(1/4) = 23.263472697663296.
  EXPECT_NEAR(bleu_from_stats(st).score, 23.263472697663296, 1e-9);
  EXPECT_NEAR(bleu_from_stats(st).precisions[3], 100.0 / 6, 1e-12);
  // test_scoring: compute_bleu([9, 7, 5, 3], [10, 8, 6, 4], 11, 11) = 0.8375922397 (x 100).
  BleuStats given;
  given.sys_len = given.ref_len = 11;
  const int64_t correct[] = {9, 7, 5, 3}, total[] = {10, 8, 6, 4};
  for (int k = 0; k < 4; ++k) given.correct[k] = correct[k], given.total[k] = total[k];
  EXPECT_NEAR(bleu_from_stats(given).score, 83.75922397, 1e-7);
  // test_degenerate_statistics: nothing matched -> 0.
  BleuStats none;
  none.total[0] = 4;
  none.sys_len = 0;
  none.ref_len = 1;
  EXPECT_EQ(bleu_from_stats(none).score, 0.0);
}

TEST(Bleu, HandDerivedSmoothingBrevityAndShortSegments) {
  // "x y z w" vs "x q z r": 1-grams 2/4; 2-, 3-, 4-grams 0 of 3, 2, 1 -> exp smoothing halves
  // each time: 100/(2*3), 100/(4*2), 100/(8*1). BLEU = (50 * 16.667 * 12.5 * 12.5)^(1/4).
  const BleuScore s = corpus_bleu({"x y z w"}, {{"x q z r"}});
  EXPECT_NEAR(s.precisions[1], 100.0 / 6, 1e-12);
  EXPECT_NEAR(s.precisions[2], 100.0 / 8, 1e-12);
  EXPECT_NEAR(s.precisions[3], 100.0 / 8, 1e-12);
  EXPECT_NEAR(s.score, std::pow(50.0 * (100.0 / 6) * 12.5 * 12.5, 0.25), 1e-9);
  EXPECT_EQ(s.brevity_penalty, 1.0);
  // Corpus level: a 3-token segment adds no 4-gram; with a 5-token exact match beside it every
  // precision is 100% and only BP = exp(1 - 11/8) remains: 68.72892787909726.
  const BleuScore c = corpus_bleu({"the cat sat", "a dog ran away fast"},
                                  {{"the cat sat on the mat"}, {"a dog ran away fast"}});
  EXPECT_NEAR(c.brevity_penalty, std::exp(1 - 11.0 / 8), 1e-15);
  EXPECT_NEAR(c.score, 68.72892787909726, 1e-9);
  // Alone, the short segment has no 4-gram at all: sacrebleu stops at that order, leaves its
  // precision 0 and log(0) := -9999999999, so the corpus scores 0 although 3/3 unigrams match.
  EXPECT_EQ(corpus_bleu({"the cat sat"}, {{"the cat sat"}}).score, 0.0);
  // Several references: the closest length wins, the shorter one on a tie (hyp 4 tokens, refs of
  // 3 and 5 -> 3); counts are clipped by the largest count in any one reference.
  const BleuStats m = bleu_segment_stats("a a a b", {"a b c", "a a d e f"});
  EXPECT_EQ(m.ref_len, 3);
  EXPECT_EQ(m.correct[0], 3);  // a: min(3, max(1, 2)) = 2, b: 1
}

}  // namespace
}  // namespace percetrain::eval
