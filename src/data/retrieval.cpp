// BM25 over a user's profile items, and the other ranking methods.
#include "percetrain/data/retrieval.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <unordered_map>

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
