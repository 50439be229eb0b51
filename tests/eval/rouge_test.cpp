// ROUGE against worked examples whose expected values are derived by hand in the comments.
#include <gtest/gtest.h>

#include "percetrain/eval/metrics.hpp"

namespace percetrain::eval {
namespace {

using Tokens = std::vector<std::string>;

TEST(RougeTokenize, LowercasesAndSplitsOnEverythingOutsideAsciiAlphanumerics) {
  // lower: "don't-stop élan 3.14 café"; every run outside [a-z0-9] is a separator.
  EXPECT_EQ(rouge_tokenize("Don't-stop ÉLAN 3.14 café"), (Tokens{"don", "t", "stop", "lan", "3", "14", "caf"}));
  EXPECT_EQ(rouge_tokenize("  !!! ... ,; "), Tokens{});
  EXPECT_EQ(rouge_tokenize(""), Tokens{});
  // Python lowercases U+212A KELVIN SIGN to "k" and U+0130 to "i" + a combining dot.
  EXPECT_EQ(rouge_tokenize("\u212Aelvin \u0130stanbul"), (Tokens{"kelvin", "i", "stanbul"}));
}

TEST(RougeTokenize, StemmerOnlyTouchesTokensLongerThanThreeCharacters) {
  // "running" -> "run", "cats" -> "cat"; "ies" (3 chars) is left alone although Porter would
  // make it "i".
  EXPECT_EQ(rouge_tokenize("Running cats ies", /*stem=*/true), (Tokens{"run", "cat", "ies"}));
  EXPECT_EQ(rouge_tokenize("Running cats ies"), (Tokens{"running", "cats", "ies"}));
}

TEST(Rouge, OneSubstitutedWord) {
  // ref  the cat sat on the mat   (6 tokens; "." dropped)
  // pred the cat is  on the mat   (6 tokens)
  // unigrams: the min(2,2) + cat 1 + on 1 + mat 1 = 5 -> P = R = F = 5/6
  // bigrams: ref {the cat, cat sat, sat on, on the, the mat}, pred {the cat, cat is, is on, on the,
  //          the mat}: 3 shared of 5 each -> 3/5
  // LCS: the cat on the mat = 5 -> 5/6
  const auto s = rouge("The cat sat on the mat.", "the cat is on the mat");
  EXPECT_DOUBLE_EQ(s.rouge1.precision, 5.0 / 6);
  EXPECT_DOUBLE_EQ(s.rouge1.recall, 5.0 / 6);
  EXPECT_DOUBLE_EQ(s.rouge1.fmeasure, 5.0 / 6);
  EXPECT_DOUBLE_EQ(s.rouge2.fmeasure, 3.0 / 5);
  EXPECT_DOUBLE_EQ(s.rougeL.fmeasure, 5.0 / 6);
}

TEST(Rouge, RepeatedWordsAreClipped) {
  // ref  the the the cat    unigrams {the:3, cat:1} (4), bigrams {the the:2, the cat:1} (3)
  // pred the the the the the  unigrams {the:5} (5),   bigrams {the the:4} (4)
  // ROUGE-1: overlap min(3,5) = 3, P = 3/5, R = 3/4, F = 2*(9/20)/(27/20) = 2/3
  // ROUGE-2: overlap min(2,4) = 2, P = 2/4, R = 2/3, F = 2*(1/3)/(7/6) = 4/7
  // ROUGE-L: LCS "the the the" = 3 -> P = 3/5, R = 3/4, F = 2/3
  const auto s = rouge("the the the cat", "the the the the the");
  EXPECT_DOUBLE_EQ(s.rouge1.precision, 3.0 / 5);
  EXPECT_DOUBLE_EQ(s.rouge1.recall, 3.0 / 4);
  EXPECT_NEAR(s.rouge1.fmeasure, 2.0 / 3, 1e-15);
  EXPECT_DOUBLE_EQ(s.rouge2.precision, 0.5);
  EXPECT_DOUBLE_EQ(s.rouge2.recall, 2.0 / 3);
  EXPECT_NEAR(s.rouge2.fmeasure, 4.0 / 7, 1e-15);
  EXPECT_NEAR(s.rougeL.fmeasure, 2.0 / 3, 1e-15);
}

TEST(Rouge, EmptyAndPunctuationOnlyTextScoresZero) {
  // An empty prediction has no n-grams: overlap 0, P = 0/max(0,1) = 0, R = 0/6 = 0, F = 0 (P+R = 0);
  // ROUGE-L is 0 whenever a side has no tokens. Punctuation-only text tokenizes to nothing.
  for (const char* pred : {"", "   ", "!!! ... ,;", "—"}) {
    const auto s = rouge("The cat sat on the mat.", pred);
    EXPECT_EQ(s.rouge1.precision, 0.0) << pred;
    EXPECT_EQ(s.rouge1.recall, 0.0) << pred;
    EXPECT_EQ(s.rouge1.fmeasure, 0.0) << pred;
    EXPECT_EQ(s.rouge2.fmeasure, 0.0) << pred;
    EXPECT_EQ(s.rougeL.fmeasure, 0.0) << pred;
  }
  const auto both = rouge("?!", "");
  EXPECT_EQ(both.rouge1.fmeasure, 0.0);
  EXPECT_EQ(both.rougeL.fmeasure, 0.0);
  // A one-token text has unigrams but no bigrams: ROUGE-2 is 0 while ROUGE-1 is 1.
  const auto one = rouge("Hello!", "hello");
  EXPECT_EQ(one.rouge1.fmeasure, 1.0);
  EXPECT_EQ(one.rouge2.fmeasure, 0.0);
  EXPECT_EQ(one.rougeL.fmeasure, 1.0);
}

TEST(Rouge, LongestCommonSubsequenceIsNotContiguous) {
  // ref a b c d e (5), pred a x c y e z (6): LCS a c e = 3 -> P = 3/6, R = 3/5,
  // F = 2*(3/10)/(11/10) = 6/11. ROUGE-1 is the same here (a, c, e); ROUGE-2 shares no bigram.
  const auto s = rouge("a b c d e", "a x c y e z");
  EXPECT_DOUBLE_EQ(s.rougeL.precision, 0.5);
  EXPECT_DOUBLE_EQ(s.rougeL.recall, 0.6);
  EXPECT_NEAR(s.rougeL.fmeasure, 6.0 / 11, 1e-15);
  EXPECT_NEAR(s.rouge1.fmeasure, 6.0 / 11, 1e-15);
  EXPECT_EQ(s.rouge2.fmeasure, 0.0);
  // Word order matters for L but not for 1: reversed text keeps ROUGE-1 = 1, LCS = 1 of 5.
  const auto r = rouge("a b c d e", "e d c b a");
  EXPECT_EQ(r.rouge1.fmeasure, 1.0);
  EXPECT_NEAR(r.rougeL.fmeasure, 1.0 / 5, 1e-15);
}

TEST(Rouge, StemmerMakesInflectionsMatch) {
  // With --stem: ref [the, cat, were, run], pred [a, cat, run]: overlap 2, P = 2/3, R = 2/4,
  // F = 2*(1/3)/(7/6) = 4/7. Without it nothing matches.
  EXPECT_NEAR(rouge("the cats were running", "a cat runs", true).rouge1.fmeasure, 4.0 / 7, 1e-15);
  EXPECT_EQ(rouge("the cats were running", "a cat runs", false).rouge1.fmeasure, 0.0);
}

}  // namespace
}  // namespace percetrain::eval
