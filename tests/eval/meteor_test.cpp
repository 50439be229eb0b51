// METEOR, Porter and WordNet against NLTK 3.8 goldens (scripts/make_meteor_goldens.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "percetrain/eval/metrics.hpp"
#include "percetrain/eval/porter.hpp"
#include "percetrain/eval/wordnet.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace percetrain::eval {
namespace {

using nlohmann::json;
using Tokens = std::vector<std::string>;

std::filesystem::path golden(const std::string& name) { return testing_util::golden_dir() / "eval" / name; }

std::vector<json> read_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::vector<json> rows;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

const WordNet& wordnet() {
  // The database is Debian's wordnet-base (bash scripts/setup.sh installs it).
  static auto db = WordNet::open(resolve_wordnet_dir("/usr/share/wordnet"));
  return *db;
}

TEST(Meteor, MatchesNltkOnCommittedPairs) {
  const auto rows = read_jsonl(golden("meteor_pairs.jsonl"));
  ASSERT_GE(rows.size(), 200u);
  double max_diff = 0;
  for (const auto& row : rows) {
    const double expected = std::stod(row["meteor"].get<std::string>());
    const double got = meteor(row["reference"].get<Tokens>(), row["hypothesis"].get<Tokens>(), wordnet());
    max_diff = std::max(max_diff, std::abs(got - expected));
    EXPECT_NEAR(got, expected, 1e-6) << row.dump();
  }
  std::cout << "METEOR parity: " << rows.size() << " pairs, max |diff| = " << max_diff << "\n";
}

TEST(Meteor, MultiReferenceTakesTheBestScore) {
  const auto rows = read_jsonl(golden("meteor_multi.jsonl"));
  ASSERT_GE(rows.size(), 10u);
  for (const auto& row : rows) {
    const double expected = std::stod(row["meteor"].get<std::string>());
    EXPECT_NEAR(meteor_multi(row["references"].get<std::vector<Tokens>>(), row["hypothesis"].get<Tokens>(), wordnet()),
                expected, 1e-6)
        << row.dump();
  }
}

TEST(Meteor, HandWorkedExample) {
  // ref "the cat sat", hyp "cat the sat": exact matches (hyp->ref) 2->2, 1->0, 0->1; sorted by
  // hypothesis index: (0,1) (1,0) (2,2), no two consecutive on both sides -> 3 chunks.
  // P = R = 1, Fmean = 1/(0.9 + 0.1) = 1, frag = 3/3, penalty = 0.5 * 1^3 -> 0.5.
  EXPECT_DOUBLE_EQ(meteor({"the", "cat", "sat"}, {"cat", "the", "sat"}, wordnet()), 0.5);
  // Identity of n words: one chunk, penalty 0.5 * (1/n)^3; n = 4 -> 1 - 0.5/64.
  EXPECT_DOUBLE_EQ(meteor({"a", "b", "c", "d"}, {"A", "B", "C", "D"}, wordnet()), 1 - 0.5 / 64);
  EXPECT_EQ(meteor({}, {"a"}, wordnet()), 0.0);
  EXPECT_EQ(meteor({"a"}, {}, wordnet()), 0.0);
  EXPECT_EQ(meteor({"x"}, {"y"}, wordnet()), 0.0);
}

TEST(PorterStemmer, MatchesNltkOnWordList) {
  std::ifstream in(golden("porter_words.tsv"));
  ASSERT_TRUE(in);
  std::string line;
  size_t count = 0, wrong = 0;
  while (std::getline(in, line)) {
    const auto tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    const std::string word = line.substr(0, tab), expected = line.substr(tab + 1);
    const std::string got = porter_stem(word);
    if (got != expected && ++wrong <= 20) ADD_FAILURE() << word << ": got " << got << ", NLTK " << expected;
    ++count;
  }
  EXPECT_GT(count, 4000u);
  EXPECT_EQ(wrong, 0u);
}

TEST(PorterStemmer, NltkSpecialCases) {
  EXPECT_EQ(porter_stem("skies"), "sky");   // irregular pool
  EXPECT_EQ(porter_stem("dying"), "die");
  EXPECT_EQ(porter_stem("ties"), "tie");    // NLTK: four-letter "ies" -> "ie"
  EXPECT_EQ(porter_stem("cried"), "cri");   // "ied" -> "i"
  EXPECT_EQ(porter_stem("is"), "is");       // two letters or fewer: only lowercased
  EXPECT_EQ(porter_stem("Running"), "run");
  EXPECT_EQ(porter_stem("generalizations"), "gener");
}

TEST(WordNet, SynonymsMatchNltk) {
  const auto rows = read_jsonl(golden("wordnet_synonyms.jsonl"));
  ASSERT_GT(rows.size(), 300u);
  for (const auto& row : rows)
    EXPECT_EQ(wordnet().synset_lemma_names(row["word"].get<std::string>()), row["lemma_names"].get<Tokens>())
        << row["word"];
}

TEST(WordNet, MorphyUsesExceptionListsAndDetachmentRules) {
  EXPECT_EQ(wordnet().morphy("geese", 'n'), Tokens{"goose"});   // noun.exc
  EXPECT_EQ(wordnet().morphy("ran", 'v'), Tokens{"run"});       // verb.exc
  EXPECT_EQ(wordnet().morphy("boxes", 'n'), Tokens{"box"});     // "xes" -> "x"
  EXPECT_EQ(wordnet().morphy("running", 'v'), Tokens{"run"});  // "ing" -> ""
  EXPECT_TRUE(wordnet().morphy("xyzzy", 'n').empty());
  const auto names = wordnet().synset_lemma_names("car");
  EXPECT_NE(std::find(names.begin(), names.end(), "automobile"), names.end());
  // Markers such as "(a)" are stripped from adjective lemma names.
  for (const auto& name : wordnet().synset_lemma_names("remote")) EXPECT_EQ(name.find('('), std::string::npos) << name;
}

TEST(WordNet, MissingDatabaseIsAClearError) {
  try {
    WordNet::open("/nonexistent/wordnet");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("wordnet-base"), std::string::npos) << e.what();
  }
  ::setenv("PERCETRAIN_WORDNET", "/from/env", 1);
  EXPECT_EQ(resolve_wordnet_dir(""), "/from/env");
  EXPECT_EQ(resolve_wordnet_dir("/explicit"), "/explicit");
  ::unsetenv("PERCETRAIN_WORDNET");
  EXPECT_EQ(resolve_wordnet_dir(""), "/usr/share/wordnet");
}

TEST(MeteorTokenize, SplitsPunctuationAndClitics) {
  EXPECT_EQ(meteor_tokenize("I don't know, it's fine... (really)!"),
            (Tokens{"I", "do", "n't", "know", ",", "it", "'s", "fine", "...", "(", "really", ")", "!"}));
  EXPECT_EQ(meteor_tokenize("  "), Tokens{});
  EXPECT_EQ(meteor_tokenize("U.S. state-of-the-art"), (Tokens{"U.S", ".", "state-of-the-art"}));
  // Dot runs and "--" stay whole on both sides of a word and on their own, as in word_tokenize.
  EXPECT_EQ(meteor_tokenize("... wait -- ...and--so.. --now ---"),
            (Tokens{"...", "wait", "--", "...", "and--so", "..", "--", "now", "--", "-"}));
}

}  // namespace
}  // namespace percetrain::eval
