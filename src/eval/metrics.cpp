// ROUGE-N / L / Lsum as Google's rouge-score computes them, BLEU as sacrebleu's corpus_bleu, and
// METEOR as NLTK 3.8's meteor_score.
#include "percetrain/eval/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <map>
#include <set>
#include <unordered_set>

#include "percetrain/eval/porter.hpp"
#include "percetrain/eval/text.hpp"
#include "percetrain/util/text.hpp"
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

namespace {

// rouge-score's _lcs_table + _backtrack_norec: the indices into `ref` of one LCS. Which LCS is
// read out matters for rougeLsum's union, so the tie rule is theirs: on a mismatch step left
// (in the candidate) only when that cell is strictly larger, else up.
std::vector<size_t> lcs_indices(const std::vector<std::string>& ref, const std::vector<std::string>& can) {
  const size_t rows = ref.size(), cols = can.size();
  std::vector<std::vector<int>> t(rows + 1, std::vector<int>(cols + 1, 0));
  for (size_t i = 1; i <= rows; ++i)
    for (size_t j = 1; j <= cols; ++j)
      t[i][j] = ref[i - 1] == can[j - 1] ? t[i - 1][j - 1] + 1 : std::max(t[i - 1][j], t[i][j - 1]);
  std::vector<size_t> out;
  size_t i = rows, j = cols;
  while (i > 0 && j > 0) {
    if (ref[i - 1] == can[j - 1]) {
      out.push_back(i - 1);
      --i;
      --j;
    } else if (t[i][j - 1] > t[i - 1][j]) {
      --j;
    } else {
      --i;
    }
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

PrecisionRecallF rouge_lsum(const std::vector<std::vector<std::string>>& reference_sentences,
                            const std::vector<std::vector<std::string>>& predicted_sentences) {
  PrecisionRecallF s;
  size_t m = 0, n = 0;
  std::map<std::string, long> ref_left, pred_left;
  for (const auto& sentence : reference_sentences) {
    m += sentence.size();
    for (const auto& t : sentence) ++ref_left[t];
  }
  for (const auto& sentence : predicted_sentences) {
    n += sentence.size();
    for (const auto& t : sentence) ++pred_left[t];
  }
  if (m == 0 || n == 0) return s;
  long hits = 0;
  for (const auto& ref : reference_sentences) {
    std::set<size_t> united;
    for (const auto& can : predicted_sentences)
      for (size_t i : lcs_indices(ref, can)) united.insert(i);
    for (size_t i : united) {  // ascending, as rouge-score's sorted union
      long& r = ref_left[ref[i]];
      long& c = pred_left[ref[i]];
      if (r > 0 && c > 0) {
        ++hits;
        --r;
        --c;
      }
    }
  }
  s.recall = static_cast<double>(hits) / static_cast<double>(m);
  s.precision = static_cast<double>(hits) / static_cast<double>(n);
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

PrecisionRecallF rouge_lsum(std::string_view reference, std::string_view prediction, bool stem) {
  auto sentences = [stem](std::string_view text) {
    std::vector<std::vector<std::string>> out;
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      if (end > start) out.push_back(rouge_tokenize(text.substr(start, end - start), stem));
      start = end + 1;
    }
    return out;
  };
  return rouge_lsum(sentences(reference), sentences(prediction));
}

RougeScores rouge(std::string_view reference, std::string_view prediction, bool stem) {
  const auto ref = rouge_tokenize(reference, stem), pred = rouge_tokenize(prediction, stem);
  return {rouge_n(ref, pred, 1), rouge_n(ref, pred, 2), rouge_l(ref, pred), rouge_lsum(reference, prediction, stem)};
}

// ---- BLEU ------------------------------------------------------------------------------------

namespace {

void replace_all(std::string* s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t at; (at = s->find(from, pos)) != std::string::npos; pos = at + from.size())
    out.append(*s, pos, at - pos).append(to);
  out.append(*s, pos, std::string::npos);
  *s = std::move(out);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The first regex of sacrebleu's TokenizerRegexp: [{-~] [[-`] [ -&] [(-+] [:-@] and '/', i.e.
// ASCII punctuation and the space except ' , - .
bool is_13a_symbol(char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') || (c >= '(' && c <= '+') ||
         (c >= ':' && c <= '@') || c == '/';
}

}  // namespace

std::vector<std::string> bleu_tokenize_13a(std::string_view segment) {
  std::string line(strip_python_whitespace(segment, /*left=*/false));
  replace_all(&line, "<skipped>", "");
  replace_all(&line, "-\n", "");
  replace_all(&line, "\n", " ");
  replace_all(&line, "&quot;", "\"");
  replace_all(&line, "&amp;", "&");
  replace_all(&line, "&lt;", "<");
  replace_all(&line, "&gt;", ">");
  line = " " + line + " ";
  // Each rule is a re.sub: matches are found left to right and never overlap. The patterns look
  // at ASCII bytes only, so scanning bytes of UTF-8 finds the same matches as scanning characters.
  std::string a;
  for (char c : line) {
    if (is_13a_symbol(c)) a.append(1, ' ').append(1, c).append(1, ' ');
    else a.push_back(c);
  }
  std::string b;  // ([^0-9])([\.,]) -> "\1 \2 "
  for (size_t i = 0; i < a.size();) {
    if (i + 1 < a.size() && !is_digit(a[i]) && (a[i + 1] == '.' || a[i + 1] == ',')) {
      b.append(1, a[i]).append(1, ' ').append(1, a[i + 1]).append(1, ' ');
      i += 2;
    } else {
      b.push_back(a[i++]);
    }
  }
  std::string c;  // ([\.,])([^0-9]) -> " \1 \2"
  for (size_t i = 0; i < b.size();) {
    if (i + 1 < b.size() && (b[i] == '.' || b[i] == ',') && !is_digit(b[i + 1])) {
      c.append(1, ' ').append(1, b[i]).append(1, ' ').append(1, b[i + 1]);
      i += 2;
    } else {
      c.push_back(b[i++]);
    }
  }
  std::string d;  // ([0-9])(-) -> "\1 \2 "
  for (size_t i = 0; i < c.size();) {
    if (i + 1 < c.size() && is_digit(c[i]) && c[i + 1] == '-') {
      d.append(1, c[i]).append(" - ");
      i += 2;
    } else {
      d.push_back(c[i++]);
    }
  }
  return split_python_whitespace(d);
}

BleuStats& BleuStats::operator+=(const BleuStats& other) {
  sys_len += other.sys_len;
  ref_len += other.ref_len;
  for (int k = 0; k < 4; ++k) {
    correct[k] += other.correct[k];
    total[k] += other.total[k];
  }
  return *this;
}

namespace {

using NgramCounts = std::map<std::vector<std::string>, int64_t>;

NgramCounts ngrams_up_to_4(const std::vector<std::string>& tokens) {
  NgramCounts counts;
  for (size_t n = 1; n <= 4; ++n)
    for (size_t i = 0; i + n <= tokens.size(); ++i)
      ++counts[std::vector<std::string>(tokens.begin() + i, tokens.begin() + i + n)];
  return counts;
}

}  // namespace

BleuStats bleu_segment_stats(std::string_view hypothesis, const std::vector<std::string>& references) {
  BleuStats s;
  NgramCounts ref_max;
  int64_t closest_diff = -1, closest_len = -1;
  const auto hyp_tokens = bleu_tokenize_13a(hypothesis);
  const auto hyp_len = static_cast<int64_t>(hyp_tokens.size());
  for (const auto& reference : references) {
    const auto tokens = bleu_tokenize_13a(reference);
    for (const auto& [gram, count] : ngrams_up_to_4(tokens)) {
      int64_t& best = ref_max[gram];
      best = std::max(best, count);
    }
    const auto len = static_cast<int64_t>(tokens.size());
    const int64_t diff = std::abs(hyp_len - len);
    if (closest_diff == -1 || diff < closest_diff || (diff == closest_diff && len < closest_len)) {
      closest_diff = diff;
      closest_len = len;
    }
  }
  s.sys_len = hyp_len;
  s.ref_len = std::max<int64_t>(closest_len, 0);
  for (const auto& [gram, count] : ngrams_up_to_4(hyp_tokens)) {
    const size_t n = gram.size() - 1;
    s.total[n] += count;
    if (auto it = ref_max.find(gram); it != ref_max.end()) s.correct[n] += std::min(count, it->second);
  }
  return s;
}

BleuScore bleu_from_stats(const BleuStats& stats) {
  BleuScore out;
  out.stats = stats;
  const double c = static_cast<double>(stats.sys_len), r = static_cast<double>(stats.ref_len);
  out.brevity_penalty = stats.sys_len < stats.ref_len ? (stats.sys_len > 0 ? std::exp(1 - r / c) : 0.0) : 1.0;
  if (std::all_of(std::begin(stats.correct), std::end(stats.correct), [](int64_t x) { return x == 0; })) return out;
  double smooth = 1.0;
  for (int k = 0; k < 4; ++k) {
    if (stats.total[k] == 0) break;  // later orders keep precision 0, which zeroes the score
    if (stats.correct[k] == 0) {
      smooth *= 2;
      out.precisions[k] = 100.0 / (smooth * static_cast<double>(stats.total[k]));
    } else {
      out.precisions[k] = 100.0 * static_cast<double>(stats.correct[k]) / static_cast<double>(stats.total[k]);
    }
  }
  double log_sum = 0.0;  // sacrebleu's my_log: log(0) is -9999999999
  for (double p : out.precisions) log_sum += p == 0 ? -9999999999.0 : std::log(p);
  out.score = out.brevity_penalty * std::exp(log_sum / 4);
  return out;
}

BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                      const std::vector<std::vector<std::string>>& references) {
  BleuStats total;
  for (size_t i = 0; i < hypotheses.size(); ++i)
    total += bleu_segment_stats(hypotheses[i], i < references.size() ? references[i] : std::vector<std::string>{});
  return bleu_from_stats(total);
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
    // A run of dots and "--" stay one token on either side, as Treebank's ellipsis and
    // double-dash rules keep them ("...and" -> "..." "and", "--" -> "--").
    while (begin < end && is_ascii_punct(chunk[begin])) {
      size_t stop = begin + 1;
      if (chunk[begin] == '.')
        while (stop < end && chunk[stop] == '.') ++stop;
      else if (chunk[begin] == '-' && stop < end && chunk[stop] == '-')
        ++stop;
      leading.push_back(chunk.substr(begin, stop - begin));
      begin = stop;
    }
    while (end > begin && is_ascii_punct(chunk[end - 1])) {
      size_t start = end - 1;
      if (chunk[start] == '.')
        while (start > begin && chunk[start - 1] == '.') --start;
      else if (chunk[start] == '-' && start > begin && chunk[start - 1] == '-')
        --start;
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
