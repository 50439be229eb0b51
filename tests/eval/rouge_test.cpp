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

// ---- rougeLsum: the cases of rouge-score's rouge_scorer_test.py (google-research/rouge) ------

TEST(RougeLsum, UnionLcsExampleOfTheRougePaper) {
  // testSummaryLevelLcs / testRougeLsum: reference "w1 w2 w3 w4 w5"; predicted sentences
  // "w1 w2 w6 w7 w8" (LCS w1 w2) and "w1 w3 w8 w9 w5" (LCS w1 w3 w5): union {w1 w2 w3 w5} = 4 hits,
  // R = 4/5, P = 4/10, F = 2 * 0.32 / 1.2 = 0.5333.
  const auto s = rouge_lsum("w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5");
  EXPECT_DOUBLE_EQ(s.recall, 0.8);
  EXPECT_DOUBLE_EQ(s.precision, 0.4);
  EXPECT_NEAR(s.fmeasure, 0.5333, 1e-4);
  // A single line on both sides is plain ROUGE-L.
  const auto flat = rouge_lsum("w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8 w1 w3 w8 w9 w5");
  const auto plain = rouge_l(rouge_tokenize("w1 w2 w3 w4 w5"), rouge_tokenize("w1 w2 w6 w7 w8 w1 w3 w8 w9 w5"));
  EXPECT_DOUBLE_EQ(flat.recall, plain.recall);
  EXPECT_DOUBLE_EQ(flat.precision, plain.precision);
  EXPECT_DOUBLE_EQ(rouge("w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5").rougeLsum.recall, 0.8);
}

TEST(RougeLsum, EmptyAndSymbolOnlySidesScoreZero) {
  // testRougeLsum's empty cases, testRougeEmpty, and the tokenizer dropping every token.
  for (const auto& [ref, pred] : std::vector<std::pair<std::string, std::string>>{
           {"w1 w2 w3 w4 w5", ""}, {"", "w1"}, {"w1 w2 w3 w4 w5", "/"}, {"testing one two", ""}, {"\n\n", "a\n"}}) {
    const auto s = rouge_lsum(ref, pred);
    EXPECT_EQ(s.precision, 0.0) << ref << " | " << pred;
    EXPECT_EQ(s.recall, 0.0);
    EXPECT_EQ(s.fmeasure, 0.0);
  }
}

TEST(RougeLsum, TokensAreNotCountedTwice) {
  // Hand-derived: reference lines "a b" and "a c", prediction "a b c" (one line). Both reference
  // lines find their LCS in it ({a b} and {a c}), but the prediction has only one "a": the second
  // line's "a" finds no unused occurrence. Hits = a, b, c = 3; R = 3/4, P = 3/3, F = 6/7.
  const auto s = rouge_lsum("a b\na c", "a b c");
  EXPECT_DOUBLE_EQ(s.recall, 0.75);
  EXPECT_DOUBLE_EQ(s.precision, 1.0);
  EXPECT_DOUBLE_EQ(s.fmeasure, 6.0 / 7);
  // The LCS is read out with rouge-score's tie rule (on a mismatch, step left in the candidate
  // only when that cell is strictly larger, else up in the reference). Reference "x y" against
  // the line "y x": both "x" and "y" are LCSs of length 1; the rule reads out "x". The second line
  // "y" contributes "y". Union {x, y}: 2 hits, R = 2/2, P = 2/3. (Reading out "y" for the first
  // line would give the union {y}: R = 1/2.)
  const auto t = rouge_lsum("x y", "y x\ny");
  EXPECT_DOUBLE_EQ(t.recall, 1.0);
  EXPECT_DOUBLE_EQ(t.precision, 2.0 / 3);
}

TEST(RougeLsum, MatchesRouge155OnRougeScoresMultiLineTestFiles) {
  // testRougeLSumAgainstRouge155WithStemming: rouge-score's testdata/pyrouge_files
  // target_multi.0.txt and prediction_multi.0.txt, with the Porter stemmer; ROUGE-1.5.5 gives
  // R 0.36538, P 0.66667, F 0.47205 (checked there to 5 places).
  const std::string target =
      "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr q'wtion "
      "wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n"
      "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer "
      "HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion gMPfJpwGw "
      "p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n"
      "NhETebUbBk'er WOvoHMTjSRizKgH'vHiing Xu,hWxfs VkNE QhgKiLHE -HidivzoM.dO anhtion jbLQiSGDTCsuhREebUaKM dv J dVN "
      "tmbOT\n"
      "vMR HDm,xOAetion D,tion HJtodT.mHl UIv-p VjWH'BdyWjnfGU-OjT aEMdFICyLWfQMtion wEMfdOKing AwkeKbO 'DxqNOHBH qKtVvm "
      "OYJl mM\n";
  const std::string prediction =
      "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi\n"
      "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed "
      "nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n"
      "xfs VkJE QhgKiLHE -HidivzoM.dO anhing jbLQiSGDTCsuhREebUaKM dv J\n"
      "VjWH'BdyWjnfGU-OjTNaEMdFICyLWfQMing wEMfdOKijg AwkeKbO 'DxqNO\n";
  const auto s = rouge_lsum(target, prediction, /*stem=*/true);
  EXPECT_NEAR(s.recall, 0.36538, 5e-6);
  EXPECT_NEAR(s.precision, 0.66667, 5e-6);
  EXPECT_NEAR(s.fmeasure, 0.47205, 5e-6);
}

}  // namespace
}  // namespace percetrain::eval
