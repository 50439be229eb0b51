// ROUGE-1/2/L (Google rouge-score semantics) and METEOR (NLTK 3.8 meteor_score semantics).
#pragma once

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

struct RougeScores {
  PrecisionRecallF rouge1, rouge2, rougeL;
};
RougeScores rouge(std::string_view reference, std::string_view prediction, bool stem = false);

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
