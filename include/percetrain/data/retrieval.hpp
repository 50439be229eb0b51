// Profile retrieval: pick the user's items for a query (BM25, LaMP's BM25, recency, first, all).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "percetrain/data/data_config.hpp"
#include "percetrain/data/records.hpp"

namespace percetrain {

// Retrieval terms: maximal runs of ASCII letters and digits, lowercased ("Wi-Fi 6E!" ->
// "wi", "fi", "6e"). Bytes outside ASCII separate terms (no Unicode case folding).
std::vector<std::string> retrieval_terms(const std::string& text);

// Okapi BM25 of `query` against each document of `documents` (the user's own items), with
// idf(t) = ln(1 + (N - n_t + 0.5) / (n_t + 0.5)) (the non-negative form Lucene uses) and
//   score(d) = sum over query terms t (repeats count) of idf(t) * tf(t,d) * (k1 + 1)
//              / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl)).
// An empty corpus or a corpus of empty documents scores 0 everywhere.
std::vector<double> bm25_scores(const std::vector<std::string>& query_terms,
                                const std::vector<std::vector<std::string>>& documents, double k1, double b);

// ---- LaMP's retrieval (rank_bm25 0.2.2 BM25Okapi, numpy 1.24 argsort, LaMP's corpus and query) ----

// LaMP's terms are Python's str.split() with no argument (split_python_whitespace, util/text.hpp):
// runs of Unicode whitespace separate terms; case and punctuation are kept ("Cat," and "cat" differ).

struct Bm25OkapiParams {
  double k1 = 1.5, b = 0.75, epsilon = 0.25;  // rank_bm25's defaults, which LaMP never changes
};

// rank_bm25's BM25Okapi.get_scores: idf(t) = ln(N - n_t + 0.5) - ln(n_t + 0.5); every negative
// idf is replaced by epsilon * (mean idf over the corpus vocabulary, negatives included);
//   score(d) = sum over query terms t (repeats count) of idf(t) * tf(t,d) * (k1 + 1)
//              / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl)),
// evaluated in rank_bm25's order of operations. An empty corpus gives no scores; a corpus of
// empty documents (where rank_bm25 divides by zero and returns NaN everywhere) gives zeros.
std::vector<double> bm25_okapi_scores(const std::vector<std::string>& query_terms,
                                      const std::vector<std::vector<std::string>>& documents,
                                      const Bm25OkapiParams& params = {});

// The indices that sort `values` ascending exactly as numpy 1.24's np.argsort (kind "quicksort",
// an introsort: median-of-3 quicksort, insertion sort below 17 elements, heapsort past the depth
// limit) orders them, ties included. NaN sorts last. The order of ties is not stable above 16
// elements, and reproducing it is the point: rank_bm25's get_top_n is argsort(scores)[::-1].
std::vector<int64_t> numpy_argsort(const std::vector<double>& values);

// What LaMP's rank_profiles.py (LaMP 1-7) and the LongLaMP reproduction's prompt code search: a
// corpus text per profile item (raw fields joined by spaces) and a query taken from the input.
struct LampRetrievalTask {
  const char* preset;                  // data.preset this task belongs to
  const char* task;                    // the benchmark's name, e.g. "LaMP-4"
  std::vector<const char*> fields;     // item fields joined with " " into the corpus text
  const char* query_rule;              // "after:MARKER", "quoted_1_2" or "whole"
};
// The task for a data preset, or nullptr when the preset is not a LaMP / LongLaMP task.
const LampRetrievalTask* lamp_retrieval_task(const std::string& preset);
// The corpus text of one item; sets *missing to the first absent field (and returns "").
std::string lamp_corpus_text(const LampRetrievalTask& task, const ProfileItem& item, std::string* missing);
// The query LaMP extracts from `input`. Where LaMP's extraction would fail (marker absent, fewer
// than three quoted strings) and the Python code would crash, the whole input is the query.
std::string lamp_query(const LampRetrievalTask& task, const std::string& input);

struct RankedItem {
  int64_t index = 0;   // position in the record's profile
  double score = 0.0;  // BM25 score; 0 for the other methods
};

// Ranks profile items and keeps the first `top_k` (all of them for method "all").
//   bm25:    by score, highest first; ties by original position (earlier first).
//   bm25_lamp: split_python_whitespace terms, bm25_okapi_scores with rank_bm25's defaults (k1 and b are
//            ignored), order = numpy_argsort(scores) reversed, as LaMP's get_top_n: with up to 16
//            items tied items come out in reverse file order (later first).
//   recency: by `dates[i]`, newest first; dates compare as sequences of integers ("2014-04-23",
//            "2014", 2014) and else as text; items without a date ("") go last; ties by position.
//   first:   the first top_k items in file order.
//   all:     every item in file order.
std::vector<RankedItem> rank_profile(Retrieval method, int64_t top_k, const std::string& query,
                                     const std::vector<std::string>& item_texts,
                                     const std::vector<std::string>& dates, double k1, double b);

}  // namespace percetrain
