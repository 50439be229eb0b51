// ROUGE-1/2/L/Lsum (Google rouge-score semantics), BLEU (sacrebleu corpus_bleu semantics) and
// METEOR (NLTK 3.8 meteor_score semantics).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace percetrain::eval {

class WordNet;

struct PrecisionRecallF {
  double precision = 0, recall = 0, fmeasure = 0;
};

// rouge-score's tokenizer: lowercase, every run outside [a-z0-9] becomes a space, split; with
// `stem`, NLTK's Porter stemmer on tokens longer than 3 characters.
std::vector<std::string> rouge_tokenize(std::string_view text, bool stem = false);

// Clipped n-gram overlap; precision / recall divide by max(count, 1); F = 2PR/(P+R), 0 when P+R=0.
PrecisionRecallF rouge_n(const std::vector<std::string>& reference, const std::vector<std::string>& prediction,
                         int n);
// Longest common subsequence over the whole token sequence (rougeL, not rougeLsum); all zero when
// either side is empty.
PrecisionRecallF rouge_l(const std::vector<std::string>& reference, const std::vector<std::string>& prediction);

// rouge-score's rougeLsum on sentences already tokenized: summary-level LCS (Lin 2004, 3.2) where
// each reference sentence takes the union of its LCS index sets against every predicted sentence
// (one LCS each, read out by rouge-score's backtracking), and a token counts as a hit only while
// both sides still have an unused occurrence of it. P = hits / predicted tokens, R = hits /
// reference tokens; all zero when either side has no sentence or no token.
PrecisionRecallF rouge_lsum(const std::vector<std::vector<std::string>>& reference_sentences,
                            const std::vector<std::vector<std::string>>& predicted_sentences);
// Sentences are the lines of the text (split on "\n", empty lines dropped), each tokenized by
// rouge_tokenize; no sentence splitting beyond that, as in rouge-score without split_summaries.
PrecisionRecallF rouge_lsum(std::string_view reference, std::string_view prediction, bool stem = false);

struct RougeScores {
  PrecisionRecallF rouge1, rouge2, rougeL, rougeLsum;
};
RougeScores rouge(std::string_view reference, std::string_view prediction, bool stem = false);

// ---- BLEU ----------------------------------------------------------------------------------

// sacrebleu's default tokenizer "13a" (mteval-v13a), after BLEU's own rstrip of the segment:
// unescapes &quot; &amp; &lt; &gt;, drops <skipped> and "-\n", splits off ASCII punctuation
// except ' , - . ; splits periods and commas unless between digits, a dash after a digit; then
// splits on whitespace. Case is kept.
std::vector<std::string> bleu_tokenize_13a(std::string_view segment);

// Sufficient statistics of one or many segments (they add up over a corpus).
struct BleuStats {
  int64_t sys_len = 0, ref_len = 0;
  int64_t correct[4] = {0, 0, 0, 0}, total[4] = {0, 0, 0, 0};
  BleuStats& operator+=(const BleuStats& other);
};
// One hypothesis against its references (13a tokens): n-gram matches clipped by the largest count
// in any one reference; ref_len is the reference length closest to the hypothesis length (the
// shorter one on a tie).
BleuStats bleu_segment_stats(std::string_view hypothesis, const std::vector<std::string>& references);

struct BleuScore {
  double score = 0, brevity_penalty = 0;  // score on sacrebleu's 0-100 scale
  double precisions[4] = {0, 0, 0, 0};    // percent
  BleuStats stats;
};
// sacrebleu's compute_bleu with smooth_method "exp" (NIST: the k-th order without matches gets
// precision 100 / (2^k * total)), max order 4, no effective order: BP = exp(1 - r/c) when c < r,
// score = BP * exp(mean of log precisions); 0 when nothing matches at all.
BleuScore bleu_from_stats(const BleuStats& stats);
// sacrebleu.corpus_bleu(hypotheses, reference streams) with its defaults; references[i] holds
// the references of hypotheses[i].
BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                      const std::vector<std::vector<std::string>>& references);

struct MeteorParams {
  double alpha = 0.9, beta = 3.0, gamma = 0.5;
};

// nltk.translate.meteor_score.single_meteor_score on pre-tokenized input: tokens are lowercased,
// aligned by exact match, then Porter stem, then WordNet synonym (on the stems, as NLTK does).
double meteor(const std::vector<std::string>& reference, const std::vector<std::string>& hypothesis,
              const WordNet& wordnet, const MeteorParams& params = {});
// meteor_score with several references: the best single score.
double meteor_multi(const std::vector<std::vector<std::string>>& references, const std::vector<std::string>& hypothesis,
                    const WordNet& wordnet, const MeteorParams& params = {});

// The tokenisation `percetrain eval` applies before METEOR (an approximation of NLTK's
// word_tokenize; see README): whitespace split, then leading/trailing punctuation and English
// clitics ('s 're 've 'll 'd 'm n't) become tokens of their own.
std::vector<std::string> meteor_tokenize(std::string_view text);

}  // namespace percetrain::eval
