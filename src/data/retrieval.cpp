// BM25 over a user's profile items (ours and LaMP's), and the other ranking methods.
#include "percetrain/data/retrieval.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <deque>
#include <string_view>
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

namespace {

// Calls f(std::string_view term) for each retrieval term of `text`, lowercased into `buffer`
// (reused, so a long text costs no allocation per word); the view is valid during the call only.
template <class F>
void for_each_retrieval_term(std::string_view text, std::string* buffer, F&& f) {
  buffer->clear();
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_term_char(c)) {
      buffer->push_back(static_cast<char>(std::tolower(c)));
    } else if (!buffer->empty()) {
      f(std::string_view(*buffer));
      buffer->clear();
    }
  }
  if (!buffer->empty()) f(std::string_view(*buffer));
}

// What both BM25 variants need of a corpus, gathered in one pass over each document's terms and
// without a copy per word: each document's length and its counts of the query's distinct terms.
// Memory is the query's distinct terms plus, per document, the query terms it holds, whatever the
// length of the documents (a 50 MB profile item costs its text, not gigabytes of word copies).
struct QueryCounts {
  std::deque<std::string> distinct;                   // the query's distinct terms (stable addresses)
  std::unordered_map<std::string_view, size_t> slot;  // term -> index into `distinct`
  std::vector<int64_t> occurrences;                   // the query's terms as slots, repeats kept, in order
  std::vector<int64_t> length;                        // per document: its number of terms
  std::vector<std::unordered_map<size_t, int64_t>> tf;  // per document: slot -> count (> 0)

  void add_query_term(std::string_view t) {
    auto it = slot.find(t);
    if (it == slot.end()) {
      distinct.emplace_back(t);
      it = slot.emplace(distinct.back(), distinct.size() - 1).first;
    }
    occurrences.push_back(static_cast<int64_t>(it->second));
  }
  void begin_document() {
    length.push_back(0);
    tf.emplace_back();
  }
  void add(std::string_view term) {
    ++length.back();
    const auto it = slot.find(term);
    if (it != slot.end()) ++tf.back()[it->second];
  }
  int64_t count(size_t d, size_t s) const {
    const auto it = tf[d].find(s);
    return it == tf[d].end() ? 0 : it->second;
  }
};

// Lucene-idf BM25 from the counts; every sum in the order of the term-list formulation.
std::vector<double> bm25_from_counts(const QueryCounts& q, double k1, double b) {
  const size_t N = q.length.size();
  std::vector<double> scores(N, 0.0);
  if (N == 0) return scores;
  double total_length = 0;
  std::vector<int64_t> df(q.distinct.size(), 0);
  for (size_t d = 0; d < N; ++d) {
    total_length += static_cast<double>(q.length[d]);
    for (const auto& kv : q.tf[d]) ++df[kv.first];
  }
  const double avgdl = total_length / static_cast<double>(N);
  if (avgdl == 0) return scores;
  for (const int64_t s : q.occurrences) {
    if (df[s] == 0) continue;
    const double n = static_cast<double>(df[s]);
    const double idf = std::log(1.0 + (static_cast<double>(N) - n + 0.5) / (n + 0.5));
    for (size_t d = 0; d < N; ++d) {
      const int64_t f = q.count(d, static_cast<size_t>(s));
      if (f == 0) continue;
      const double freq = static_cast<double>(f);
      const double dl = static_cast<double>(q.length[d]);
      scores[d] += idf * freq * (k1 + 1.0) / (freq + k1 * (1.0 - b + b * dl / avgdl));
    }
  }
  return scores;
}

void add_query_terms(QueryCounts* counts, const std::vector<std::string>& terms) {
  for (const auto& t : terms) counts->add_query_term(t);
}

}  // namespace

std::vector<std::string> retrieval_terms(const std::string& text) {
  std::vector<std::string> terms;
  std::string buffer;
  for_each_retrieval_term(text, &buffer, [&](std::string_view t) { terms.emplace_back(t); });
  return terms;
}

std::vector<double> bm25_scores(const std::vector<std::string>& query_terms,
                                const std::vector<std::vector<std::string>>& documents, double k1, double b) {
  QueryCounts counts;
  add_query_terms(&counts, query_terms);
  for (const auto& document : documents) {
    counts.begin_document();
    for (const auto& t : document) counts.add(t);
  }
  return bm25_from_counts(counts, k1, b);
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


namespace {

// rank_bm25's BM25Okapi over documents whose terms `for_each_term(d, f)` visits in order (as
// string_views that stay valid until the scores are computed). Besides the query counts it keeps
// one entry per distinct corpus term (the mean idf runs over the whole vocabulary), never a copy
// per word.
template <class ForEachTerm>
std::vector<double> bm25_okapi_core(QueryCounts& counts, size_t N, ForEachTerm&& for_each_term,
                                    const Bm25OkapiParams& p) {
  std::vector<double> scores(N, 0.0);
  if (N == 0) return scores;
  // Document frequencies in order of first appearance: rank_bm25 sums the idfs over a dict in
  // insertion order, and the mean (hence the floor) depends on that order in the last bits.
  struct Seen {
    size_t index;     // into df
    size_t last_doc;  // the last document counted in its df
  };
  std::unordered_map<std::string_view, Seen> vocabulary;
  std::vector<int64_t> df;
  int64_t total_length = 0;
  for (size_t d = 0; d < N; ++d) {
    counts.begin_document();
    for_each_term(d, [&](std::string_view t) {
      counts.add(t);
      const auto it = vocabulary.emplace(t, Seen{df.size(), d});
      if (it.second) df.push_back(1);
      else if (it.first->second.last_doc != d) {
        it.first->second.last_doc = d;
        ++df[it.first->second.index];
      }
    });
    total_length += counts.length.back();
  }
  if (total_length == 0) return scores;
  const double avgdl = static_cast<double>(total_length) / static_cast<double>(N);
  std::vector<double> idf(df.size());
  double idf_sum = 0.0;
  for (size_t i = 0; i < df.size(); ++i) {
    idf[i] = std::log(static_cast<double>(N) - static_cast<double>(df[i]) + 0.5) -
             std::log(static_cast<double>(df[i]) + 0.5);
    idf_sum += idf[i];
  }
  const double eps = p.epsilon * (idf_sum / static_cast<double>(df.size()));
  for (double& value : idf)
    if (value < 0) value = eps;
  for (const int64_t s : counts.occurrences) {
    const auto it = vocabulary.find(counts.distinct[static_cast<size_t>(s)]);
    if (it == vocabulary.end()) continue;  // tf is 0 in every document: the term adds exactly 0
    const double term_idf = idf[it->second.index];
    for (size_t d = 0; d < N; ++d) {
      const int64_t f = counts.count(d, static_cast<size_t>(s));
      if (f == 0) continue;
      const double freq = static_cast<double>(f);
      const double dl = static_cast<double>(counts.length[d]);
      scores[d] += term_idf * (freq * (p.k1 + 1) / (freq + p.k1 * (1 - p.b + p.b * dl / avgdl)));
    }
  }
  return scores;
}

}  // namespace

std::vector<double> bm25_okapi_scores(const std::vector<std::string>& query_terms,
                                      const std::vector<std::vector<std::string>>& documents,
                                      const Bm25OkapiParams& p) {
  QueryCounts counts;
  add_query_terms(&counts, query_terms);
  return bm25_okapi_core(counts, documents.size(), [&](size_t d, const auto& f) {
    for (const auto& t : documents[d]) f(std::string_view(t));
  }, p);
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
    // Streamed: the items' terms are counted as they are read, never stored.
    QueryCounts counts;
    std::string buffer;
    for_each_retrieval_term(query, &buffer, [&](std::string_view term) { counts.add_query_term(term); });
    for (const auto& t : item_texts) {
      counts.begin_document();
      for_each_retrieval_term(t, &buffer, [&](std::string_view term) { counts.add(term); });
    }
    const auto scores = bm25_from_counts(counts, k1, b);
    for (int64_t i = 0; i < n; ++i) ranked[i].score = scores[i];
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const RankedItem& x, const RankedItem& y) { return x.score > y.score; });
  } else if (method == Retrieval::kBm25Lamp) {
    QueryCounts counts;
    for_each_python_word(query, [&](std::string_view t) { counts.add_query_term(t); });
    const auto scores = bm25_okapi_core(counts, item_texts.size(), [&](size_t d, const auto& f) {
      for_each_python_word(item_texts[d], f);
    }, Bm25OkapiParams{});
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
