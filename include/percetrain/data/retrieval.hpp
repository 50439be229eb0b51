// Profile retrieval: pick the user's items for a query (BM25, recency, first, all).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "percetrain/data/data_config.hpp"

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

struct RankedItem {
  int64_t index = 0;   // position in the record's profile
  double score = 0.0;  // BM25 score; 0 for the other methods
};

// Ranks profile items and keeps the first `top_k` (all of them for method "all").
//   bm25:    by score, highest first; ties by original position (earlier first).
//   recency: by `dates[i]`, newest first; dates compare as sequences of integers ("2014-04-23",
//            "2014", 2014) and else as text; items without a date ("") go last; ties by position.
//   first:   the first top_k items in file order.
//   all:     every item in file order.
std::vector<RankedItem> rank_profile(Retrieval method, int64_t top_k, const std::string& query,
                                     const std::vector<std::string>& item_texts,
                                     const std::vector<std::string>& dates, double k1, double b);

}  // namespace percetrain
