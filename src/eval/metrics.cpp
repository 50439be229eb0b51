// ROUGE-N / ROUGE-L as Google's rouge-score computes them and METEOR as NLTK 3.8's meteor_score.
#include "percetrain/eval/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <unordered_set>

#include "percetrain/eval/porter.hpp"
#include "percetrain/eval/text.hpp"
#include "percetrain/eval/wordnet.hpp"

namespace percetrain::eval {
namespace {

double fmeasure(double precision, double recall) {
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

}  // namespace

std::vector<std::string> rouge_tokenize(std::string_view text, bool stem) {
  // Python lowercases the whole text first; the only non-ASCII characters whose lowercase is
  // ASCII are U+0130 (-> "i" + combining dot) and U+212A KELVIN SIGN (-> "k"). Everything else
  // outside [a-z0-9] separates tokens.
  std::vector<std::string> tokens;
  std::string current;
  auto flush = [&] {
    if (!current.empty()) tokens.push_back(std::move(current));
    current.clear();
  };
  for (char32_t c : utf8_to_u32(text)) {
    if (c >= 'A' && c <= 'Z') c += 32;
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      current.push_back(static_cast<char>(c));
    } else if (c == 0x212A) {
      current.push_back('k');
    } else if (c == 0x130) {
      current.push_back('i');
      flush();
    } else {
      flush();
    }
  }
  flush();
  if (stem)
    for (auto& token : tokens)
      if (token.size() > 3) token = porter_stem(token);
  return tokens;
}

PrecisionRecallF rouge_n(const std::vector<std::string>& reference, const std::vector<std::string>& prediction,
                         int n) {
  auto ngrams = [n](const std::vector<std::string>& tokens) {
    std::map<std::vector<std::string>, int> counts;
    for (size_t i = 0; i + n <= tokens.size(); ++i)
      ++counts[std::vector<std::string>(tokens.begin() + i, tokens.begin() + i + n)];
    return counts;
  };
  const auto ref = ngrams(reference), pred = ngrams(prediction);
  long overlap = 0, ref_total = 0, pred_total = 0;
  for (const auto& [gram, count] : ref) {
    ref_total += count;
    if (auto it = pred.find(gram); it != pred.end()) overlap += std::min(count, it->second);
  }
  for (const auto& entry : pred) pred_total += entry.second;
  PrecisionRecallF s;
  s.precision = static_cast<double>(overlap) / std::max<long>(pred_total, 1);
  s.recall = static_cast<double>(overlap) / std::max<long>(ref_total, 1);
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

PrecisionRecallF rouge_l(const std::vector<std::string>& reference, const std::vector<std::string>& prediction) {
  PrecisionRecallF s;
  if (reference.empty() || prediction.empty()) return s;
  // One rolling row of the LCS table: O(|ref| * |pred|) time, O(|pred|) memory.
  std::vector<int> prev(prediction.size() + 1, 0), cur(prediction.size() + 1, 0);
  for (size_t i = 1; i <= reference.size(); ++i) {
    for (size_t j = 1; j <= prediction.size(); ++j)
      cur[j] = reference[i - 1] == prediction[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  const double lcs = prev[prediction.size()];
  s.precision = lcs / prediction.size();
  s.recall = lcs / reference.size();
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

RougeScores rouge(std::string_view reference, std::string_view prediction, bool stem) {
  const auto ref = rouge_tokenize(reference, stem), pred = rouge_tokenize(prediction, stem);
  return {rouge_n(ref, pred, 1), rouge_n(ref, pred, 2), rouge_l(ref, pred)};
}

namespace {

using Enumerated = std::vector<std::pair<int, std::string>>;
using Matches = std::vector<std::pair<int, int>>;  // (hypothesis index, reference index)

// NLTK's _match_enums: hypothesis words from last to first each take the last equal unmatched
// reference word; matched entries leave both lists.
void match_equal(Enumerated& hyp, Enumerated& ref, Matches& matches) {
  for (int i = static_cast<int>(hyp.size()) - 1; i >= 0; --i) {
    for (int j = static_cast<int>(ref.size()) - 1; j >= 0; --j) {
      if (hyp[i].second == ref[j].second) {
        matches.emplace_back(hyp[i].first, ref[j].first);
        hyp.erase(hyp.begin() + i);
        ref.erase(ref.begin() + j);
        break;
      }
    }
  }
}

int count_chunks(const Matches& matches) {
  int chunks = 1;
  for (size_t i = 0; i + 1 < matches.size(); ++i)
    if (!(matches[i + 1].first == matches[i].first + 1 && matches[i + 1].second == matches[i].second + 1)) ++chunks;
  return chunks;
}

}  // namespace

double meteor(const std::vector<std::string>& reference, const std::vector<std::string>& hypothesis,
              const WordNet& wordnet, const MeteorParams& params) {
  Enumerated hyp, ref;
  for (size_t i = 0; i < hypothesis.size(); ++i) hyp.emplace_back(static_cast<int>(i), lower(hypothesis[i]));
  for (size_t i = 0; i < reference.size(); ++i) ref.emplace_back(static_cast<int>(i), lower(reference[i]));
  const size_t hyp_len = hyp.size(), ref_len = ref.size();
  if (hyp_len == 0 || ref_len == 0) return 0.0;  // NLTK's ZeroDivisionError branch

  Matches matches;
  match_equal(hyp, ref, matches);
  // The unmatched words are replaced by their stems, and stay stems for the WordNet stage.
  for (auto& entry : hyp) entry.second = porter_stem(entry.second);
  for (auto& entry : ref) entry.second = porter_stem(entry.second);
  match_equal(hyp, ref, matches);
  for (int i = static_cast<int>(hyp.size()) - 1; i >= 0; --i) {
    std::unordered_set<std::string> synonyms;
    for (auto& name : wordnet.synset_lemma_names(hyp[i].second))
      if (name.find('_') == std::string::npos) synonyms.insert(std::move(name));
    synonyms.insert(hyp[i].second);
    for (int j = static_cast<int>(ref.size()) - 1; j >= 0; --j) {
      if (synonyms.count(ref[j].second)) {
        matches.emplace_back(hyp[i].first, ref[j].first);
        hyp.erase(hyp.begin() + i);
        ref.erase(ref.begin() + j);
        break;
      }
    }
  }
  std::sort(matches.begin(), matches.end());

  const double matched = static_cast<double>(matches.size());
  if (matched == 0) return 0.0;
  const double precision = matched / hyp_len, recall = matched / ref_len;
  const double fmean = precision * recall / (params.alpha * precision + (1 - params.alpha) * recall);
  const double fragmentation = count_chunks(matches) / matched;
  const double penalty = params.gamma * std::pow(fragmentation, params.beta);
  return (1 - penalty) * fmean;
}

double meteor_multi(const std::vector<std::vector<std::string>>& references, const std::vector<std::string>& hypothesis,
                    const WordNet& wordnet, const MeteorParams& params) {
  double best = 0;
  bool first = true;
  for (const auto& reference : references) {
    const double score = meteor(reference, hypothesis, wordnet, params);
    if (first || score > best) best = score;
    first = false;
  }
  return best;
}

namespace {

bool is_ascii_punct(char c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') || (c >= '{' && c <= '~');
}

}  // namespace

std::vector<std::string> meteor_tokenize(std::string_view text) {
  std::vector<std::string> out;
  for (const std::string& chunk : split_whitespace(text)) {
    size_t begin = 0, end = chunk.size();
    std::vector<std::string> leading, trailing;
    while (begin < end && is_ascii_punct(chunk[begin])) leading.emplace_back(1, chunk[begin++]);
    while (end > begin && is_ascii_punct(chunk[end - 1])) {
      size_t start = end - 1;
      if (chunk[start] == '.')  // "..." stays one token
        while (start > begin && chunk[start - 1] == '.') --start;
      trailing.insert(trailing.begin(), chunk.substr(start, end - start));
      end = start;
    }
    out.insert(out.end(), leading.begin(), leading.end());
    std::string word = chunk.substr(begin, end - begin);
    if (!word.empty()) {
      std::string low = word;  // ASCII-only lowercasing keeps byte positions
      for (char& c : low)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      size_t split = std::string::npos;
      if (low.size() > 3 && low.compare(low.size() - 3, 3, "n't") == 0) {
        split = low.size() - 3;
      } else {
        for (const char* clitic : {"'s", "'re", "'ve", "'ll", "'d", "'m"}) {
          const size_t n = std::char_traits<char>::length(clitic);
          if (low.size() > n && low.compare(low.size() - n, n, clitic) == 0) {
            split = low.size() - n;
            break;
          }
        }
      }
      if (split != std::string::npos) {
        out.push_back(word.substr(0, split));
        out.push_back(word.substr(split));
      } else {
        out.push_back(word);
      }
    }
    out.insert(out.end(), trailing.begin(), trailing.end());
  }
  return out;
}

}  // namespace percetrain::eval
