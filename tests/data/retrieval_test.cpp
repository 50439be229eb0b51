// BM25 against hand-computed values, deterministic ties, LaMP's BM25 (rank_bm25 + numpy order),
// and the other ranking methods.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "percetrain/data/retrieval.hpp"
#include "percetrain/util/text.hpp"
#include "test_util.hpp"

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

// ---- bm25_lamp ------------------------------------------------------------------------------

TEST(PythonSplit, UnicodeWhitespaceCaseAndPunctuationKept) {
  // str.split(): tabs, newlines, U+00A0 and U+3000 separate; "Cat," stays one term, case kept.
  EXPECT_EQ(split_python_whitespace(" Cat,\tcat\n\xC2\xA0" "dog\xE3\x80\x80" "caf\xC3\xA9 \x1F x "),
            (std::vector<std::string>{"Cat,", "cat", "dog", "caf\xC3\xA9", "x"}));
  EXPECT_TRUE(split_python_whitespace(" \t\n").empty());
}

TEST(Bm25Okapi, MatchesHandComputedScoresWithTheIdfFloor) {
  // rank_bm25 BM25Okapi, k1 = 1.5, b = 0.75, epsilon = 0.25. Documents (N = 4, lengths 2 2 3 1,
  // avgdl = 8 / 4 = 2): "a x", "a y", "a z z", "w".
  //   idf(a)  = ln(4 - 3 + 0.5) - ln(3 + 0.5) = ln(1.5) - ln(3.5) = -0.8472978603872037 (< 0)
  //   idf(x, y, z, w) = ln(3.5) - ln(1.5) = +0.8472978603872037
  //   mean idf = (-0.8473 + 4 * 0.8473) / 5 = 0.5083787162323222; floor = 0.25 * mean
  //   = 0.12709467905808056, which replaces idf(a).
  //   K(dl) = 1.5 (0.25 + 0.75 dl / 2): K(2) = 1.5, K(3) = 2.0625.
  // Query "a z":
  //   d0, d1: a tf 1: 0.12709468 * 2.5 / (1 + 1.5)                        = 0.12709467905808056
  //   d2: a tf 1: 0.12709468 * 2.5 / (1 + 2.0625) = 0.10375075841475964;
  //       z tf 2: 0.84729786 * 5 / (2 + 2.0625)   = 1.0428281358611737   -> 1.1465788942759334
  //   d3: nothing                                                          = 0
  const std::vector<std::vector<std::string>> docs = {{"a", "x"}, {"a", "y"}, {"a", "z", "z"}, {"w"}};
  const auto s = bm25_okapi_scores({"a", "z"}, docs);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_NEAR(s[0], 0.12709467905808056, 1e-15);
  EXPECT_NEAR(s[1], 0.12709467905808056, 1e-15);
  EXPECT_NEAR(s[2], 1.1465788942759334, 1e-15);
  EXPECT_EQ(s[3], 0.0);
  // Case-sensitive terms: "A" is not "a". Repeated query terms count again.
  EXPECT_EQ(bm25_okapi_scores({"A"}, docs), (std::vector<double>{0, 0, 0, 0}));
  EXPECT_NEAR(bm25_okapi_scores({"z", "z"}, docs)[2], 2 * 1.0428281358611737, 1e-15);
  // Edge cases rank_bm25 crashes on (no documents) or answers NaN for (only empty documents).
  EXPECT_TRUE(bm25_okapi_scores({"a"}, {}).empty());
  EXPECT_EQ(bm25_okapi_scores({"a"}, {{}, {}}), (std::vector<double>{0.0, 0.0}));
}

TEST(Bm25Okapi, ANegativeMeanIdfMakesTheFloorNegative) {
  // N = 3: "the cat sat", "the dog sat on the mat", "cat cat dog" (lengths 3 6 3, avgdl 4).
  // the, cat, sat, dog occur in 2 documents: idf = ln(1.5) - ln(2.5) = -0.5108256237659907;
  // on, mat in 1: +0.5108256237659907. Mean = (4 * -0.5108 + 2 * 0.5108) / 6 = -0.1702752079219969,
  // floor = 0.25 * mean = -0.04256880198049923: the "floor" is negative, as in rank_bm25.
  // Query "cat mat": K(3) = 1.5 (0.25 + 0.75 * 3/4) = 1.21875, K(6) = 1.5 (0.25 + 1.125) = 2.0625
  //   d0: cat tf 1: -0.0425688 * 2.5 / 2.21875    = -0.04796484730197096
  //   d1: mat tf 1: 0.5108256 * 2.5 / 3.0625      =  0.41700050919672715
  //   d2: cat tf 2: -0.0425688 * 5 / 3.21875      = -0.06612629433863958
  const std::vector<std::vector<std::string>> docs = {
      {"the", "cat", "sat"}, {"the", "dog", "sat", "on", "the", "mat"}, {"cat", "cat", "dog"}};
  const auto s = bm25_okapi_scores({"cat", "mat"}, docs);
  EXPECT_NEAR(s[0], -0.04796484730197096, 1e-15);
  EXPECT_NEAR(s[1], 0.41700050919672715, 1e-15);
  EXPECT_NEAR(s[2], -0.06612629433863958, 1e-15);
  // So an item matching a common word ranks below one matching nothing at all.
  const auto ranked = rank_profile(Retrieval::kBm25Lamp, 3, "cat mat",
                                   {"the cat sat", "the dog sat on the mat", "cat cat dog"}, {}, 0, 0);
  EXPECT_EQ(ranked[0].index, 1);
  EXPECT_EQ(ranked[1].index, 0);
  EXPECT_EQ(ranked[2].index, 2);
}

TEST(RankProfile, Bm25LampOrdersTiesLikeLampDoes) {
  // get_top_n is np.argsort(scores)[::-1]: with <= 16 items argsort is an insertion sort (stable
  // ascending), so after the reversal tied items come out later-first. Scores as in
  // MatchesHandComputedScoresWithTheIdfFloor: d2 1.1466, d0 = d1 = 0.1271, d3 0.
  const auto ranked = rank_profile(Retrieval::kBm25Lamp, 4, "a z", {"a x", "a y", "a z z", "w"}, {}, 1.2, 0.75);
  std::vector<int64_t> order;
  for (const auto& r : ranked) order.push_back(r.index);
  EXPECT_EQ(order, (std::vector<int64_t>{2, 1, 0, 3}));
  EXPECT_NEAR(ranked[0].score, 1.1465788942759334, 1e-15);
  EXPECT_EQ(rank_profile(Retrieval::kBm25Lamp, 1, "a z", {"a x", "a y", "a z z", "w"}, {}, 1.2, 0.75).size(), 1u);
  // Whitespace terms, case-sensitive: "Kettle!" does not match "kettle", while `bm25` matches it.
  const std::vector<std::string> items = {"red kettle", "Kettle! red", "blue mug"};
  EXPECT_EQ(rank_profile(Retrieval::kBm25Lamp, 3, "Kettle!", items, {}, 1.2, 0.75)[0].index, 1);
  EXPECT_EQ(rank_profile(Retrieval::kBm25, 3, "Kettle!", items, {}, 1.2, 0.75)[0].index, 0);
}

TEST(NumpyArgsort, SmallArraysAreStableAscending) {
  EXPECT_EQ(numpy_argsort({}), (std::vector<int64_t>{}));
  EXPECT_EQ(numpy_argsort({3, 1, 2, 1}), (std::vector<int64_t>{1, 3, 2, 0}));
  const double nan = std::nan("");
  EXPECT_EQ(numpy_argsort({nan, 1, -1}), (std::vector<int64_t>{2, 1, 0}));  // NaN last
}

TEST(NumpyArgsort, MatchesNumpy1_24OnTieHeavyArrays) {
  // tests/golden/data/numpy_argsort.jsonl: np.argsort of 72 arrays (1 to 300 elements, few
  // distinct values) from Debian 12's numpy 1.24.2, LaMP's pinned version
  // (scripts/make_argsort_goldens.py). Above 16 elements the order of ties is not stable.
  std::ifstream in(testing_util::golden_dir() / "data" / "numpy_argsort.jsonl");
  ASSERT_TRUE(in) << "golden file missing";
  std::string line;
  int cases = 0, unstable = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    const auto values = j.at("values").get<std::vector<double>>();
    const auto expected = j.at("argsort").get<std::vector<int64_t>>();
    EXPECT_EQ(numpy_argsort(values), expected) << "case " << cases << " (" << values.size() << " values)";
    std::vector<int64_t> stable(values.size());
    for (size_t i = 0; i < stable.size(); ++i) stable[i] = static_cast<int64_t>(i);
    std::stable_sort(stable.begin(), stable.end(), [&](int64_t a, int64_t b) { return values[a] < values[b]; });
    unstable += stable != expected;
    ++cases;
  }
  EXPECT_EQ(cases, 72);
  EXPECT_GT(unstable, 10);  // the golden cases do exercise the unstable order
}

TEST(LampRetrieval, CorpusAndQueryPerTask) {
  ProfileItem item;
  item.fields = {{"id", "7"}, {"title", "Deep nets"}, {"abstract", "We train."}, {"text", "Body"},
                 {"overall", "5.0"}, {"summary", "Nice"}, {"description", "A mug"}, {"reviewText", "Good mug"},
                 {"content", "Post body"}};
  std::string missing;
  EXPECT_EQ(lamp_corpus_text(*lamp_retrieval_task("lamp5"), item, &missing), "Deep nets We train.");
  EXPECT_EQ(lamp_corpus_text(*lamp_retrieval_task("lamp4"), item, &missing), "Deep nets Body");
  EXPECT_EQ(lamp_corpus_text(*lamp_retrieval_task("lamp7"), item, &missing), "Body");
  EXPECT_EQ(lamp_corpus_text(*lamp_retrieval_task("longlamp_product_review"), item, &missing),
            "5.0 Nice A mug Good mug");
  EXPECT_EQ(lamp_corpus_text(*lamp_retrieval_task("longlamp_topic_writing"), item, &missing), "Nice Post body");
  EXPECT_TRUE(missing.empty());
  EXPECT_EQ(lamp_corpus_text(*lamp_retrieval_task("lamp2"), ProfileItem{{{"tag", "x"}}}, &missing), "");
  EXPECT_EQ(missing, "description");
  EXPECT_EQ(lamp_retrieval_task("custom"), nullptr);

  EXPECT_EQ(lamp_query(*lamp_retrieval_task("lamp4"), "Generate a headline for the following article: Big news"),
            " Big news");
  EXPECT_EQ(lamp_query(*lamp_retrieval_task("lamp7"), "Paraphrase the following tweet: a: b"), " a: b");
  EXPECT_EQ(lamp_query(*lamp_retrieval_task("lamp3"), "Score this. review: ok"), " ok");
  EXPECT_EQ(lamp_query(*lamp_retrieval_task("lamp3"), "Score this. Review: ok"), "Score this. Review: ok");
  EXPECT_EQ(lamp_query(*lamp_retrieval_task("lamp1"),
                       "For an author who has written the paper with the title \"T\", which reference is related? "
                       "[1]: \"First ref\" [2]: \"Second ref\""),
            "First ref Second ref");
  EXPECT_EQ(lamp_query(*lamp_retrieval_task("longlamp_abstract_generation"),
                       "Generate an abstract for the title \"X\" using the following items: 1. nets 2. data"),
            " 1. nets 2. data");
  EXPECT_EQ(lamp_query(*lamp_retrieval_task("longlamp_product_review"), "whole input"), "whole input");
}

}  // namespace
}  // namespace percetrain
