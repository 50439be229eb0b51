// BM25 against hand-computed values, deterministic ties, and the other ranking methods.
#include <gtest/gtest.h>

#include "percetrain/data/retrieval.hpp"

namespace percetrain {
namespace {

TEST(RetrievalTerms, LowercaseAlphanumericRuns) {
  EXPECT_EQ(retrieval_terms("Wi-Fi 6E, the BEST!! caf\xC3\xA9"),
            (std::vector<std::string>{"wi", "fi", "6e", "the", "best", "caf"}));
  EXPECT_TRUE(retrieval_terms(" -- ").empty());
}

TEST(Bm25, MatchesHandComputedScores) {
  // N = 3, |d| = 3, 6, 3, avgdl = 4, k1 = 1.2, b = 0.75; "cat" and "dog" each occur in 2 docs:
  // idf = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln(1.6) = 0.47000362924573558.
  // d0: cat tf 1: 2.2 / (1 + 1.2 (0.25 + 0.75 * 3/4)) = 2.2 / 1.975      -> 0.47000363 * 1.11392405
  // d1: dog tf 1: 2.2 / (1 + 1.2 (0.25 + 0.75 * 6/4)) = 2.2 / 2.65       -> 0.47000363 * 0.83018868
  // d2: cat tf 2: 4.4 / (2 + 0.975) = 1.47899160; dog tf 1: 1.11392405  -> 0.47000363 * 2.59291565
  const std::vector<std::vector<std::string>> docs = {
      {"the", "cat", "sat"}, {"the", "dog", "sat", "on", "the", "mat"}, {"cat", "cat", "dog"}};
  const auto s = bm25_scores({"cat", "dog"}, docs, 1.2, 0.75);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_NEAR(s[0], 0.523548346501579, 1e-12);
  EXPECT_NEAR(s[1], 0.390191692204007, 1e-12);
  EXPECT_NEAR(s[2], 1.218679764545692, 1e-12);
  // Repeated query terms count again (as rank_bm25 does); unknown terms add nothing.
  const auto twice = bm25_scores({"cat", "cat", "zebra"}, docs, 1.2, 0.75);
  EXPECT_NEAR(twice[0], 2 * 0.523548346501579, 1e-12);
  EXPECT_EQ(twice[1], 0.0);
}

TEST(Bm25, EmptyCorpusAndEmptyDocuments) {
  EXPECT_TRUE(bm25_scores({"a"}, {}, 1.2, 0.75).empty());
  EXPECT_EQ(bm25_scores({"a"}, {{}, {}}, 1.2, 0.75), (std::vector<double>{0.0, 0.0}));
}

TEST(RankProfile, Bm25TiesKeepFileOrder) {
  // Items 1 and 3 are identical, 0 and 2 do not match: ranking is 1, 3, then 0, 2.
  const std::vector<std::string> items = {"nothing here", "red kettle", "other words", "red kettle"};
  const auto ranked = rank_profile(Retrieval::kBm25, 4, "Red Kettle!", items, {}, 1.2, 0.75);
  ASSERT_EQ(ranked.size(), 4u);
  EXPECT_EQ(ranked[0].index, 1);
  EXPECT_EQ(ranked[1].index, 3);
  EXPECT_EQ(ranked[0].score, ranked[1].score);
  EXPECT_GT(ranked[0].score, 0.0);
  EXPECT_EQ(ranked[2].index, 0);
  EXPECT_EQ(ranked[3].index, 2);
  EXPECT_EQ(rank_profile(Retrieval::kBm25, 2, "red", items, {}, 1.2, 0.75).size(), 2u);
  EXPECT_TRUE(rank_profile(Retrieval::kBm25, 0, "red", items, {}, 1.2, 0.75).empty());
}

TEST(RankProfile, RecencyFirstAll) {
  const std::vector<std::string> items = {"a", "b", "c", "d", "e"};
  const std::vector<std::string> dates = {"2014-04-23", "", "2015-01-02", "2014-12-30", "2015-01-02"};
  const auto recent = rank_profile(Retrieval::kRecency, 5, "", items, dates, 1.2, 0.75);
  std::vector<int64_t> order;
  for (const auto& r : recent) order.push_back(r.index);
  EXPECT_EQ(order, (std::vector<int64_t>{2, 4, 3, 0, 1}));  // tie 2/4 by position, undated last
  const auto years = rank_profile(Retrieval::kRecency, 2, "", {"x", "y", "z"}, {"2019", "2021", "2020"}, 1.2, 0.75);
  EXPECT_EQ(years[0].index, 1);
  EXPECT_EQ(years[1].index, 2);
  const auto first = rank_profile(Retrieval::kFirst, 2, "", items, {}, 1.2, 0.75);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[1].index, 1);
  EXPECT_EQ(rank_profile(Retrieval::kAll, 1, "", items, {}, 1.2, 0.75).size(), 5u);
}

}  // namespace
}  // namespace percetrain
