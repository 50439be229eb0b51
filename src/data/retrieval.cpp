// BM25 over a user's profile items (ours and LaMP's), and the other ranking methods.
#include "percetrain/data/retrieval.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <unordered_map>

#include "percetrain/util/text.hpp"


namespace percetrain {
namespace {

bool is_term_char(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// "2014-04-23" -> {2014, 4, 23}; empty when the text has no digits.
std::vector<int64_t> date_numbers(const std::string& text) {
  std::vector<int64_t> out;
  int64_t value = 0;
  bool in_number = false;
  for (const char ch : text) {
    if (ch >= '0' && ch <= '9') {
      value = value * 10 + (ch - '0');
      in_number = true;
      if (value > (int64_t(1) << 50)) return {};
    } else if (in_number) {
      out.push_back(value);
      value = 0;
      in_number = false;
    }
  }
  if (in_number) out.push_back(value);
  return out;
}

}  // namespace

std::vector<std::string> retrieval_terms(const std::string& text) {
  std::vector<std::string> terms;
  std::string current;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_term_char(c)) {
      current.push_back(static_cast<char>(std::tolower(c)));
    } else if (!current.empty()) {
      terms.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) terms.push_back(std::move(current));
  return terms;
}

std::vector<double> bm25_scores(const std::vector<std::string>& query_terms,
                                const std::vector<std::vector<std::string>>& documents, double k1, double b) {
  const size_t N = documents.size();
  std::vector<double> scores(N, 0.0);
  if (N == 0) return scores;
  double total_length = 0;
  std::vector<std::unordered_map<std::string, int64_t>> tf(N);
  std::unordered_map<std::string, int64_t> df;
  for (size_t d = 0; d < N; ++d) {
    total_length += static_cast<double>(documents[d].size());
    for (const auto& t : documents[d]) ++tf[d][t];
    for (const auto& kv : tf[d]) ++df[kv.first];
  }
  const double avgdl = total_length / static_cast<double>(N);
  if (avgdl == 0) return scores;
  for (const auto& t : query_terms) {
    const auto it = df.find(t);
    if (it == df.end()) continue;
    const double n = static_cast<double>(it->second);
    const double idf = std::log(1.0 + (static_cast<double>(N) - n + 0.5) / (n + 0.5));
    for (size_t d = 0; d < N; ++d) {
      const auto f = tf[d].find(t);
      if (f == tf[d].end()) continue;
      const double freq = static_cast<double>(f->second);
      const double dl = static_cast<double>(documents[d].size());
      scores[d] += idf * freq * (k1 + 1.0) / (freq + k1 * (1.0 - b + b * dl / avgdl));
    }
  }
  return scores;
}

// ---- LaMP's retrieval -----------------------------------------------------------------------

namespace {


// numpy's comparison for floats: NaN sorts after every number.
bool numpy_less(double a, double b) { return a < b || (b != b && a == a); }

int msb(int64_t n) {
  int depth = 0;
  while (n >>= 1) ++depth;
  return depth;
}

// numpy's aheapsort_ on tosort[0, n): a max-heap with 1-based indexing, sifting down.
void numpy_heap_argsort(const double* v, int64_t* tosort, int64_t n) {
  int64_t* a = tosort - 1;  // a[1..n]
  auto sift = [&](int64_t top, int64_t size, int64_t held) {
    int64_t i = top, j = top << 1;
    while (j <= size) {
      if (j < size && numpy_less(v[a[j]], v[a[j + 1]])) ++j;
      if (!numpy_less(v[held], v[a[j]])) break;
      a[i] = a[j];
      i = j;
      j += j;
    }
    a[i] = held;
  };
  for (int64_t l = n >> 1; l > 0; --l) sift(l, n, a[l]);
  while (n > 1) {
    const int64_t held = a[n];
    a[n] = a[1];
    --n;
    sift(1, n, held);
  }
}

}  // namespace


std::vector<double> bm25_okapi_scores(const std::vector<std::string>& query_terms,
                                      const std::vector<std::vector<std::string>>& documents,
                                      const Bm25OkapiParams& p) {
  const size_t N = documents.size();
  std::vector<double> scores(N, 0.0);
  if (N == 0) return scores;
  // Document frequencies in order of first appearance: rank_bm25 sums the idfs over a dict in
  // insertion order, and the mean (hence the floor) depends on that order in the last bits.
  std::vector<std::unordered_map<std::string, int64_t>> tf(N);
  std::unordered_map<std::string, size_t> slot;
  std::vector<std::pair<std::string, int64_t>> df;
  int64_t total_length = 0;
  for (size_t d = 0; d < N; ++d) {
    total_length += static_cast<int64_t>(documents[d].size());
    std::vector<const std::string*> first_seen;
    for (const auto& t : documents[d])
      if (tf[d][t]++ == 0) first_seen.push_back(&t);
    for (const std::string* t : first_seen) {
      const auto it = slot.emplace(*t, df.size());
      if (it.second) df.emplace_back(*t, 0);
      ++df[it.first->second].second;
    }
  }
  if (total_length == 0) return scores;
  const double avgdl = static_cast<double>(total_length) / static_cast<double>(N);
  std::unordered_map<std::string, double> idf;
  double idf_sum = 0.0;
  std::vector<std::string> negative;
  for (const auto& [term, n] : df) {
    const double value = std::log(static_cast<double>(N) - static_cast<double>(n) + 0.5) -
                         std::log(static_cast<double>(n) + 0.5);
    idf[term] = value;
    idf_sum += value;
    if (value < 0) negative.push_back(term);
  }
  const double eps = p.epsilon * (idf_sum / static_cast<double>(df.size()));
  for (const auto& term : negative) idf[term] = eps;
  for (const auto& q : query_terms) {
    const auto it = idf.find(q);
    if (it == idf.end()) continue;  // tf is 0 in every document: the term adds exactly 0
    for (size_t d = 0; d < N; ++d) {
      const auto f = tf[d].find(q);
      if (f == tf[d].end()) continue;
      const double freq = static_cast<double>(f->second);
      const double dl = static_cast<double>(documents[d].size());
      scores[d] += it->second * (freq * (p.k1 + 1) / (freq + p.k1 * (1 - p.b + p.b * dl / avgdl)));
    }
  }
  return scores;
}

std::vector<int64_t> numpy_argsort(const std::vector<double>& values) {
  const auto num = static_cast<int64_t>(values.size());
  std::vector<int64_t> order(values.size());
  for (int64_t i = 0; i < num; ++i) order[static_cast<size_t>(i)] = i;
  if (num < 2) return order;
  const double* v = values.data();
  int64_t* pl = order.data();
  int64_t* pr = pl + num - 1;
  std::vector<int64_t*> stack;
  std::vector<int> depths;
  int cdepth = msb(num) * 2;
  constexpr int64_t kSmall = 15;  // numpy's SMALL_QUICKSORT: partitions of <= 16 are insertion-sorted
  for (;;) {
    if (cdepth < 0) {
      numpy_heap_argsort(v, pl, pr - pl + 1);
    } else {
      while (pr - pl > kSmall) {
        int64_t* pm = pl + ((pr - pl) >> 1);
        if (numpy_less(v[*pm], v[*pl])) std::swap(*pm, *pl);
        if (numpy_less(v[*pr], v[*pm])) std::swap(*pr, *pm);
        if (numpy_less(v[*pm], v[*pl])) std::swap(*pm, *pl);
        const double pivot = v[*pm];
        int64_t* pi = pl;
        int64_t* pj = pr - 1;
        std::swap(*pm, *pj);
        for (;;) {
          do ++pi; while (numpy_less(v[*pi], pivot));
          do --pj; while (numpy_less(pivot, v[*pj]));
          if (pi >= pj) break;
          std::swap(*pi, *pj);
        }
        std::swap(*pi, *(pr - 1));
        // The larger side waits on the stack; the loop goes on with the smaller one.
        if (pi - pl < pr - pi) {
          stack.push_back(pi + 1);
          stack.push_back(pr);
          pr = pi - 1;
        } else {
          stack.push_back(pl);
          stack.push_back(pi - 1);
          pl = pi + 1;
        }
        depths.push_back(--cdepth);
      }
      for (int64_t* pi = pl + 1; pi <= pr; ++pi) {  // insertion sort: stable within the run
        const int64_t held = *pi;
        const double value = v[held];
        int64_t* pj = pi;
        while (pj > pl && numpy_less(value, v[*(pj - 1)])) {
          *pj = *(pj - 1);
          --pj;
        }
        *pj = held;
      }
    }
    if (stack.empty()) break;
    pr = stack.back();
    stack.pop_back();
    pl = stack.back();
    stack.pop_back();
    cdepth = depths.back();
    depths.pop_back();
  }
  return order;
}

namespace {

// Per task: the profile fields LaMP joins into the corpus text and how it finds the query.
//  LaMP 1-7: LaMP/rank_profiles.py (github.com/LaMP-Benchmark/LaMP), without --use_date; LaMP-2
//    from LaMP/prompts/prompts.py, because rank_profiles.py's LaMP-2 branch unpacks three values
//    into two and cannot run. LaMP-5: rank_profiles.py takes the text after the first ':'
//    (prompts.py after 'paper:'; the same text for LaMP's inputs, whose first colon is that one).
//  LongLaMP: its repository publishes no retrieval code; the prompt code of the public
//    reproduction (github.com/JIJI5647/longLaMP, prompts/prompt.py) searches product reviews as
//    "{overall} {summary} {description} {reviewText}" with the whole input as query, abstracts
//    as "{title} {abstract}" with the text after 'items:', and topic writing as the profile's
//    post "{input} {output}", which in the published data are the fields summary and content.
const LampRetrievalTask kLampTasks[] = {
    {"lamp1", "LaMP-1", {"title", "abstract"}, "quoted_1_2"},
    {"lamp2", "LaMP-2", {"description"}, "after:description:"},
    {"lamp3", "LaMP-3", {"text"}, "after:review:"},
    {"lamp4", "LaMP-4", {"title", "text"}, "after:article:"},
    {"lamp5", "LaMP-5", {"title", "abstract"}, "after::"},
    {"lamp6", "LaMP-6", {"text"}, "after::"},
    {"lamp7", "LaMP-7", {"text"}, "after::"},
    {"longlamp_product_review", "LongLaMP product review", {"overall", "summary", "description", "reviewText"}, "whole"},
    {"longlamp_abstract_generation", "LongLaMP abstract generation", {"title", "abstract"}, "after:items:"},
    {"longlamp_topic_writing", "LongLaMP topic writing", {"summary", "content"}, "whole"},
};

}  // namespace

const LampRetrievalTask* lamp_retrieval_task(const std::string& preset) {
  for (const auto& t : kLampTasks)
    if (preset == t.preset) return &t;
  return nullptr;
}

std::string lamp_corpus_text(const LampRetrievalTask& task, const ProfileItem& item, std::string* missing) {
  std::string out;
  for (size_t i = 0; i < task.fields.size(); ++i) {
    const std::string* value = item.find(task.fields[i]);
    if (!value) {
      *missing = task.fields[i];
      return "";
    }
    out += (i ? " " : "") + *value;
  }
  return out;
}

std::string lamp_query(const LampRetrievalTask& task, const std::string& input) {
  const std::string rule = task.query_rule;
  if (rule.rfind("after:", 0) == 0) {
    const std::string marker = rule.substr(6);  // case-sensitive, first occurrence: str.find
    const size_t at = input.find(marker);
    return at == std::string::npos ? input : input.substr(at + marker.size());
  }
  if (rule == "quoted_1_2") {  // LaMP-1: the two candidate titles, the 2nd and 3rd quoted strings
    std::vector<std::string> quoted;
    size_t open = std::string::npos;
    for (size_t i = 0; i < input.size(); ++i) {
      if (input[i] != '"') continue;
      if (open == std::string::npos) {
        open = i;
      } else {
        quoted.push_back(input.substr(open + 1, i - open - 1));
        open = std::string::npos;
      }
    }
    return quoted.size() >= 3 ? quoted[1] + " " + quoted[2] : input;
  }
  return input;
}

std::vector<RankedItem> rank_profile(Retrieval method, int64_t top_k, const std::string& query,
                                     const std::vector<std::string>& item_texts,
                                     const std::vector<std::string>& dates, double k1, double b) {
  const auto n = static_cast<int64_t>(item_texts.size());
  std::vector<RankedItem> ranked(n);
  for (int64_t i = 0; i < n; ++i) ranked[i].index = i;
  if (method == Retrieval::kAll) return ranked;
  if (method == Retrieval::kBm25) {
    std::vector<std::vector<std::string>> docs;
    docs.reserve(n);
    for (const auto& t : item_texts) docs.push_back(retrieval_terms(t));
    const auto scores = bm25_scores(retrieval_terms(query), docs, k1, b);
    for (int64_t i = 0; i < n; ++i) ranked[i].score = scores[i];
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const RankedItem& x, const RankedItem& y) { return x.score > y.score; });
  } else if (method == Retrieval::kBm25Lamp) {
    std::vector<std::vector<std::string>> docs;
    docs.reserve(n);
    for (const auto& t : item_texts) docs.push_back(split_python_whitespace(t));
    const auto scores = bm25_okapi_scores(split_python_whitespace(query), docs);
    const auto ascending = numpy_argsort(scores);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t index = ascending[static_cast<size_t>(n - 1 - i)];
      ranked[i] = RankedItem{index, scores[static_cast<size_t>(index)]};
    }
  } else if (method == Retrieval::kRecency) {
    std::vector<std::vector<int64_t>> numbers(n);
    for (int64_t i = 0; i < n; ++i)
      if (i < static_cast<int64_t>(dates.size())) numbers[i] = date_numbers(dates[i]);
    auto has_date = [&](int64_t i) { return i < static_cast<int64_t>(dates.size()) && !dates[i].empty(); };
    std::stable_sort(ranked.begin(), ranked.end(), [&](const RankedItem& x, const RankedItem& y) {
      const bool hx = has_date(x.index), hy = has_date(y.index);
      if (hx != hy) return hx;
      if (!hx) return false;
      const auto& nx = numbers[x.index];
      const auto& ny = numbers[y.index];
      if (!nx.empty() && !ny.empty()) return nx > ny;  // newest first
      if (nx.empty() != ny.empty()) return !nx.empty();
      return dates[x.index] > dates[y.index];
    });
  }
  if (top_k < n) ranked.resize(static_cast<size_t>(std::max<int64_t>(top_k, 0)));
  return ranked;
}

}  // namespace percetrain
