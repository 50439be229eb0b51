// Paired prompts and tokens: templates, identical response ids, the length policy, bad records.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"
#include "percetrain/data/dataset.hpp"
#include "percetrain/data/pairing.hpp"
#include "percetrain/data/records.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace percetrain {
namespace {

namespace fs = std::filesystem;
using testing_util::ScratchDir;
using testing_util::source_dir;

const Tokenizer& demo_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = load_tokenizer((source_dir() / "data" / "tokenizer").string());
  return *tok;
}

DataConfig review_config() {
  DataConfig c;
  c.preset = "longlamp_product_review";
  apply_data_preset(c.preset, &c);
  return c;
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

const char kGoodRecord[] =
    R"({"id": "r1", "input": "Generate the review text written by a reviewer who has given an overall rating of 5.0 for a product with description \"A red kettle.\". The summary of the review text is \"Love it\".", "output": "Great kettle. Cheers from the porch!", "profile": [{"overall": 4.0, "summary": "Nice mug", "reviewText": "A good mug. Cheers from the porch!", "description": "Mug."}, {"overall": 5.0, "summary": "Good kettle", "reviewText": "The red kettle boils fast. Cheers from the porch!", "description": "Kettle."}]})";

Record good_record() {
  const ScratchDir dir("percetrain-data");
  write_file(dir / "one.jsonl", std::string(kGoodRecord) + "\n");
  RecordReader reader((dir / "one.jsonl").string());
  Record r;
  BadRecord bad;
  bool is_bad = true;
  EXPECT_TRUE(reader.next(&r, &bad, &is_bad));
  EXPECT_FALSE(is_bad) << bad.what;
  return r;
}

std::vector<int> tail(const std::vector<int32_t>& ids, int32_t n) {
  return std::vector<int>(ids.end() - n, ids.end());
}

TEST(Templates, RenderSlotsAndEscapes) {
  const std::string a = "A", b = "B";
  const auto lookup = [&](const std::string& name) -> const std::string* {
    return name == "a" ? &a : name == "b" ? &b : nullptr;
  };
  EXPECT_EQ(render_template("{a}-{{b}}-{b}}}", "t", lookup), "A-{b}-B}");
  EXPECT_THROW(render_template("{c}", "t", lookup), Error);
  EXPECT_EQ(template_slots("x {a} {{y}} {b}", "t"), (std::vector<std::string>{"a", "b"}));
  EXPECT_THROW(template_slots("a } b", "t"), Error);
  EXPECT_THROW(template_slots("{a", "t"), Error);
  EXPECT_THROW(template_slots("{a b}", "t"), Error);
}

TEST(Presets, EveryPresetBuildsAndUnknownNamesFail) {
  for (const auto& name : data_preset_names()) {
    DataConfig c;
    c.preset = name;
    EXPECT_NO_THROW(PairBuilder(c, demo_tokenizer())) << name;
  }
  EXPECT_EQ(data_preset_names().size(), 10u);  // LongLaMP 3, LaMP 1-7
  DataConfig c;
  EXPECT_THROW(apply_data_preset("lamp9", &c), Error);
  c.preset = "longlamp_product_review";
  c.prompt_template = "{input}\n";  // no {profile}: every PIR would be zero
  c.item_template = "{summary}";
  EXPECT_THROW(PairBuilder(c, demo_tokenizer()), Error);
}

TEST(Presets, JobConfigAppliesThePresetThenExplicitKeys) {
  const JobConfig job = parse_job_config(
      R"({"model": {"path": "m"}, "data": {"item_template": "{text}", "preset": "lamp7", "top_k": 2}})", "job.json");
  EXPECT_EQ(job.data.item_template, "{text}");  // explicit key wins, whatever the key order
  EXPECT_EQ(job.data.profile_template, "Here are some of the user's past tweets:\n{items}\n\n");
  EXPECT_EQ(job.data.prompt_template, "{profile}{input}\n");
  EXPECT_EQ(job.data.top_k, 2);
  try {
    parse_job_config(R"({"model": {"path": "m"}, "data": {"preset": "lamp_4"}})", "job.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.preset"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("lamp4"), std::string::npos) << e.what();
  }
}

TEST(Pairing, PromptsDifferOnlyByTheProfileSection) {
  DataConfig c = review_config();
  const PairBuilder builder(c, demo_tokenizer());
  const Record r = good_record();
  PairedExample ex;
  PairDetail d;
  PairProblem p;
  ASSERT_TRUE(builder.build(r, &ex, &d, &p)) << p.message();
  // BM25 on the description + summary part of the input ranks the kettle review first.
  ASSERT_EQ(d.used.size(), 2u);
  EXPECT_EQ(d.used[0].index, 1);
  EXPECT_GT(d.used[0].score, d.used[1].score);
  EXPECT_EQ(d.query, "\"A red kettle.\". The summary of the review text is \"Love it\".");
  EXPECT_EQ(d.personalised_prompt,
            "Here are some of the user's past reviews:\n"
            "Good kettle (rated 5.0): The red kettle boils fast. Cheers from the porch!\n"
            "Nice mug (rated 4.0): A good mug. Cheers from the porch!\n\n" + r.input + "\n");
  EXPECT_EQ(d.counterfactual_prompt, r.input + "\n");
  // Prompt ids: BOS + the prompt text; response: the output alone (no BOS) + EOS.
  const Tokenizer& tok = demo_tokenizer();
  std::vector<int> response = tok.encode(r.output, false);
  response.push_back(tok.eos_id());
  EXPECT_EQ(tail(ex.personalised, ex.response_length), response);
  EXPECT_EQ(tail(ex.counterfactual, ex.response_length), response);
  std::vector<int> cf = {tok.bos_id()};
  for (int id : tok.encode(r.input + "\n", false)) cf.push_back(id);
  for (int id : response) cf.push_back(id);
  EXPECT_EQ(std::vector<int>(ex.counterfactual.begin(), ex.counterfactual.end()), cf);
  EXPECT_EQ(ex.profile_items, 2);
  EXPECT_EQ(ex.response_text, r.output);

  c.add_eos = false;
  ASSERT_TRUE(PairBuilder(c, tok).build(r, &ex, &d, &p));
  EXPECT_EQ(tail(ex.personalised, ex.response_length), tok.encode(r.output, false));
}

TEST(Pairing, Bm25LampSearchesLampsCorpusWithLampsQuery) {
  // LaMP-4: corpus "{title} {text}" (not the rendered item), query = the text after "article:",
  // whitespace terms, case-sensitive. Every corpus term occurs in one item (N = 4), so each idf is
  // ln(3.5) - ln(1.5) = 0.8472978603872037; lengths 5 4 5 4, avgdl 18/4 = 4.5.
  //   item 0 "Harbour town floods Rain again" matches town, floods: 2 * idf * 2.5 / (1 + K(5))
  //     with K(5) = 1.5 (0.25 + 0.75 * 5 / 4.5) = 1.625: 2 * 0.8069503432259082 = 1.6139006864518164
  //   item 2 "Storm warning Wind and rain" matches Storm: 0.8069503432259082; items 1 and 3: 0,
  //   which LaMP's reversed argsort lists later-first (3, 1).
  const std::string json = R"({"id": "n1", "input": "Generate a headline for the following article: Storm floods the harbour town", "output": "Storm hits town", "profile": [{"title": "Harbour town floods", "text": "Rain again"}, {"title": "Election day", "text": "Votes counted"}, {"title": "Storm warning", "text": "Wind and rain"}, {"title": "Market news", "text": "Prices up"}]})";
  const ScratchDir dir("percetrain-lamp");
  write_file(dir / "one.jsonl", json + "\n");
  RecordReader reader((dir / "one.jsonl").string());
  Record r;
  BadRecord bad;
  bool is_bad = true;
  ASSERT_TRUE(reader.next(&r, &bad, &is_bad));
  ASSERT_FALSE(is_bad) << bad.what;
  DataConfig c;
  c.preset = "lamp4";
  apply_data_preset(c.preset, &c);
  c.retrieval = Retrieval::kBm25Lamp;
  c.top_k = 4;
  PairedExample ex;
  PairDetail d;
  PairProblem p;
  ASSERT_TRUE(PairBuilder(c, demo_tokenizer()).build(r, &ex, &d, &p)) << p.message();
  EXPECT_EQ(d.query, " Storm floods the harbour town");
  std::vector<int64_t> order;
  for (const auto& item : d.retrieved) order.push_back(item.index);
  EXPECT_EQ(order, (std::vector<int64_t>{0, 2, 3, 1}));
  EXPECT_NEAR(d.retrieved[0].score, 1.6139006864518164, 1e-14);
  EXPECT_NEAR(d.retrieved[1].score, 0.8069503432259082, 1e-14);
  EXPECT_EQ(d.retrieved[0].text, "\"Harbour town floods\" is the title for \"Rain again\"");  // the prompt's item
  // `bm25` on the same record: lowercase terms (harbour matches too), ties in file order.
  c.retrieval = Retrieval::kBm25;
  ASSERT_TRUE(PairBuilder(c, demo_tokenizer()).build(r, &ex, &d, &p)) << p.message();
  order.clear();
  for (const auto& item : d.retrieved) order.push_back(item.index);
  EXPECT_EQ(order, (std::vector<int64_t>{0, 2, 1, 3}));
  // A profile item without a field LaMP searches is a bad record naming the field.
  r.profile[3].fields = {{"title", "Market news"}};
  c.retrieval = Retrieval::kBm25Lamp;
  c.item_template = "{title}";  // the prompt does not need "text"; LaMP's search does
  EXPECT_FALSE(PairBuilder(c, demo_tokenizer()).build(r, &ex, &d, &p));
  EXPECT_NE(p.message().find("profile[3].text: is missing (bm25_lamp searches it for LaMP-4)"), std::string::npos)
      << p.message();
}

// data.query_pattern moved from std::regex (which overflowed the stack on long inputs) to PCRE2:
// on inputs std::regex can handle, every preset's pattern and a few user patterns extract the same.
TEST(Pairing, QueryExtractionMatchesStdRegexOnNormalInputs) {
  std::vector<std::string> patterns;
  for (const auto& name : data_preset_names()) {
    DataConfig c;
    apply_data_preset(name, &c);
    patterns.push_back(c.query_pattern);
  }
  patterns.insert(patterns.end(), {"article: (.*)", "(x)|(y)", "^(Title)$", "TITLE:\\s*(\\w+)"});
  const std::vector<std::string> inputs = {
      "",
      "Generate the review text for a product with description \"A red kettle.\". The summary is \"ok\".",
      "Generate the content for a Reddit post: My cat\r\nand my dog",
      "Generate an abstract for the title \"Deep nets\" using the following items: a, b",
      "For an author who has written the paper with the title \"X\", which reference is related? [1]: \"A\" [2]: \"B\"",
      "Which tag does this movie relate to among the following tags? Description: A heist gone wrong.",
      "What is the score of the following review on a scale of 1 to 5? just answer with 1, 2, 3, 4, or 5 without further explanation. review: Meh.",
      "Generate a headline for the following ARTICLE: Storm floods the harbour town",
      "Generate a title for the following abstract of a paper: We study things.",
      "Paraphrase the following tweet without any explanation before or after it: so tired\nof this",
      "no marker at all",
      "title\nTitle",
      "y",
      "Title: foo bar",
      "caf\xC3\xA9 article:\xC3\xA9t\xC3\xA9",
  };
  for (const auto& pattern : patterns) {
    DataConfig c = review_config();
    c.query_pattern = pattern;
    c.retrieval = Retrieval::kBm25;
    const PairBuilder builder(c, demo_tokenizer());
    const std::regex old(pattern, std::regex::ECMAScript | std::regex::icase);
    for (const auto& input : inputs) {
      Record r = good_record();
      r.input = input;
      std::string expected = input;
      std::smatch m;
      if (std::regex_search(input, m, old)) expected = m[1].str();
      PairedExample ex;
      PairDetail d;
      PairProblem p;
      ASSERT_TRUE(builder.build(r, &ex, &d, &p)) << p.message();
      EXPECT_EQ(d.query, expected) << "pattern " << pattern << " on " << input;
    }
  }
  DataConfig bad = review_config();
  bad.query_pattern = "article: (";
  EXPECT_TRUE(testing_util::throws_error([&] { PairBuilder(bad, demo_tokenizer()); }, "data.query_pattern"));
  bad.query_pattern = "article: .*";
  EXPECT_TRUE(testing_util::throws_error([&] { PairBuilder(bad, demo_tokenizer()); }, "no capture group"));
}

// std::regex recursed once per character after the marker: ~40 KB overflowed the stack.
TEST(Pairing, QueryExtractionOnAHugeInputDoesNotRecurse) {
  const PairBuilder builder(review_config(), demo_tokenizer());
  Record r = good_record();
  std::string tail;
  for (int i = 0; i < 100000; ++i) tail += "word ";
  r.input = "Generate a review for a product with description " + tail;
  PairedExample ex;
  PairDetail d;
  PairProblem p;
  builder.build(r, &ex, &d, &p);  // too long for max_length or not: what matters is no crash
  if (p.kind == PairProblem::kNone) EXPECT_EQ(d.query, tail);
}

TEST(Pairing, EmptyProfileGivesEqualSequences) {
  Record r = good_record();
  r.profile.clear();
  PairedExample ex;
  PairDetail d;
  PairProblem p;
  ASSERT_TRUE(PairBuilder(review_config(), demo_tokenizer()).build(r, &ex, &d, &p));
  EXPECT_EQ(ex.personalised, ex.counterfactual);
  EXPECT_EQ(ex.profile_items, 0);
  DataConfig none = review_config();
  none.top_k = 0;
  ASSERT_TRUE(PairBuilder(none, demo_tokenizer()).build(good_record(), &ex, &d, &p));
  EXPECT_EQ(ex.personalised, ex.counterfactual);
}

TEST(Pairing, ChatFormatsWrapBothPromptsAndEndTheResponseWithTheTurnEnd) {
  DataConfig c = review_config();
  c.chat_format = ChatFormat::kLlama2;
  c.system_prompt = "You write reviews.";
  PairedExample ex;
  PairDetail d;
  PairProblem p;
  ASSERT_TRUE(PairBuilder(c, demo_tokenizer()).build(good_record(), &ex, &d, &p));
  for (const std::string* prompt : {&d.personalised_prompt, &d.counterfactual_prompt}) {
    EXPECT_EQ(prompt->rfind("[INST] <<SYS>>\nYou write reviews.\n<</SYS>>\n\n", 0), 0u) << *prompt;
    EXPECT_EQ(prompt->substr(prompt->size() - 7), "[/INST]") << *prompt;
  }
  EXPECT_EQ(ex.personalised.back(), demo_tokenizer().eos_id());
  EXPECT_TRUE(std::equal(ex.counterfactual.end() - ex.response_length, ex.counterfactual.end(),
                         ex.personalised.end() - ex.response_length));
  c.chat_format = ChatFormat::kNone;
  ASSERT_TRUE(PairBuilder(c, demo_tokenizer()).build(good_record(), &ex, &d, &p));
  EXPECT_EQ(d.counterfactual_prompt, "You write reviews.\n\n" + good_record().input + "\n");
}

// The length policy: profile first, then the input from the left, never the response.
TEST(Pairing, TruncationKeepsResponseAndRespectsMaxLength) {
  const Tokenizer& tok = demo_tokenizer();
  RecordReader reader((source_dir() / "data" / "demo" / "train.jsonl").string());
  Record r;
  BadRecord bad;
  bool is_bad = false;
  ASSERT_TRUE(reader.next(&r, &bad, &is_bad));
  DataConfig c = review_config();
  const PairBuilder full_builder(c, tok);
  PairedExample full;
  PairDetail full_detail;
  PairProblem p;
  ASSERT_TRUE(full_builder.build(r, &full, &full_detail, &p));
  const auto response = tail(full.personalised, full.response_length);
  const auto full_length = static_cast<int64_t>(full.personalised.size());
  const auto bare_length = static_cast<int64_t>(full.counterfactual.size());

  int exact = 0, profile_cut = 0, input_cut = 0, checked = 0;
  for (int64_t max_length = full_length + 2; max_length >= full.response_length + 2; max_length -= 7) {
    c.max_length = max_length;
    PairedExample ex;
    PairDetail d;
    if (!PairBuilder(c, tok).build(r, &ex, &d, &p)) {
      EXPECT_EQ(p.kind, PairProblem::kTooLong);
      continue;
    }
    ++checked;
    EXPECT_LE(static_cast<int64_t>(ex.personalised.size()), max_length);
    EXPECT_LE(ex.counterfactual.size(), ex.personalised.size());
    EXPECT_EQ(tail(ex.personalised, ex.response_length), response) << max_length;
    EXPECT_EQ(tail(ex.counterfactual, ex.response_length), response) << max_length;
    exact += static_cast<int64_t>(ex.personalised.size()) == max_length;
    if (max_length < full_length) {
      EXPECT_TRUE(d.profile_truncated) << max_length;
    }
    if (max_length >= bare_length) {
      EXPECT_FALSE(d.input_truncated) << max_length;
      EXPECT_EQ(d.counterfactual_prompt, full_detail.counterfactual_prompt);
    } else {
      EXPECT_TRUE(d.input_truncated) << max_length;
      EXPECT_EQ(ex.profile_items, 0);
      EXPECT_EQ(ex.personalised, ex.counterfactual);
      // Cut from the left: what is left of the input is its end.
      const std::string kept = d.counterfactual_prompt.substr(0, d.counterfactual_prompt.size() - 1);
      EXPECT_EQ(r.input.compare(r.input.size() - kept.size(), kept.size(), kept), 0) << kept;
    }
    profile_cut += d.profile_truncated && !d.input_truncated;
    input_cut += d.input_truncated;
  }
  EXPECT_GT(profile_cut, 5);
  EXPECT_GT(input_cut, 2);
  // Cutting at token boundaries lands on max_length itself almost always.
  EXPECT_GE(exact, checked * 8 / 10) << exact << " of " << checked;

  // A profile token budget cuts the profile alone.
  c.max_length = 4096;
  c.profile_token_budget = 30;
  PairedExample budget;
  PairDetail d;
  ASSERT_TRUE(PairBuilder(c, tok).build(r, &budget, &d, &p));
  EXPECT_TRUE(d.profile_truncated);
  EXPECT_FALSE(d.input_truncated);
  ASSERT_FALSE(d.used.empty());
  EXPECT_TRUE(d.used.back().truncated);
  // 30 item tokens, plus the section's header line, separators and blank line.
  const auto header = tok.encode("Here are some of the user's past reviews:\n\n\n\n\n", false).size();
  EXPECT_LE(budget.personalised.size(), full.counterfactual.size() + 30 + header + 4);
  EXPECT_GT(budget.personalised.size(), full.counterfactual.size() + 20);
}

TEST(Pairing, ResponseThatDoesNotFitIsAnErrorOrASkip) {
  const ScratchDir dir("percetrain-data");
  write_file(dir / "d.jsonl", std::string(kGoodRecord) + "\n" + kGoodRecord + "\n");
  DataConfig c = review_config();
  c.max_length = 10;  // the response alone is longer
  try {
    load_paired_examples(c, (dir / "d.jsonl").string(), "", demo_tokenizer(), nullptr);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("d.jsonl:1: output"), std::string::npos) << what;
    EXPECT_NE(what.find("does not fit"), std::string::npos) << what;
  }
  c.on_bad_record = OnBadRecord::kSkip;
  DatasetStats stats;
  EXPECT_TRUE(load_paired_examples(c, (dir / "d.jsonl").string(), "", demo_tokenizer(), &stats).empty());
  EXPECT_EQ(stats.records, 2);
  EXPECT_EQ(stats.skipped, 2);
  EXPECT_EQ(stats.skipped_too_long, 2);
  EXPECT_EQ(stats.skip_messages.size(), 2u);
}

// Each kind of bad record, as JSONL (file:line) and as a JSON array (file[index]).
TEST(BadRecords, StrictStopsSkipCounts) {
  struct Case {
    std::string name, record, field, what;
  };
  const std::string input = R"("input": "Generate a review for \"x\".")";
  const std::string profile = R"("profile": [{"summary": "s", "reviewText": "t", "overall": 5}])";
  const std::vector<Case> cases = {
      {"not an object", R"(["input", "output"])", "", "is not a JSON object"},
      {"missing input", R"({"output": "o", )" + profile + "}", "input", "is missing"},
      {"missing output", "{" + input + ", " + profile + "}", "output", "is missing"},
      {"profile not a list", "{" + input + R"(, "output": "o", "profile": {"a": 1}})", "profile", "is not a list"},
      {"item field absent", "{" + input + R"(, "output": "o", "profile": [{"summary": "s", "reviewText": "t", "overall": 5}, {"summary": "s", "overall": 4}]})",
       "profile[1].reviewText", "is missing"},
      {"invalid UTF-8", "{" + input + R"(, "output": "caf)" + std::string("\xC3\x28") + R"(", )" + profile + "}", "output",
       "invalid UTF-8"},
      {"item not an object", "{" + input + R"(, "output": "o", "profile": [3]})", "profile[0]", "is not an object"},
  };
  const ScratchDir dir("percetrain-data");
  DataConfig strict = review_config();
  DataConfig skip = strict;
  skip.on_bad_record = OnBadRecord::kSkip;
  for (const auto& k : cases) {
    for (const bool array : {false, true}) {
      const fs::path file = dir / (array ? "bad.json" : "bad.jsonl");
      write_file(file, array ? "[" + std::string(kGoodRecord) + ",\n " + k.record + ", " + kGoodRecord + "]"
                             : std::string(kGoodRecord) + "\n" + k.record + "\n" + kGoodRecord + "\n");
      const std::string where = file.string() + (array ? "[1]" : ":2") + (k.field.empty() ? "" : ": " + k.field);
      try {
        load_paired_examples(strict, file.string(), "", demo_tokenizer(), nullptr);
        ADD_FAILURE() << k.name << ": no error in strict mode";
      } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_EQ(what.rfind(where + ": " + k.what, 0), 0u) << k.name << ": " << what;
      }
      DatasetStats stats;
      const auto examples = load_paired_examples(skip, file.string(), "", demo_tokenizer(), &stats);
      EXPECT_EQ(examples.size(), 2u) << k.name;
      EXPECT_EQ(stats.records, 3) << k.name;
      EXPECT_EQ(stats.skipped, 1) << k.name;
      EXPECT_EQ(stats.skipped_bad_records, 1) << k.name;
      ASSERT_EQ(stats.skip_messages.size(), 1u);
      EXPECT_EQ(stats.skip_messages[0].rfind(where + ": " + k.what, 0), 0u) << stats.skip_messages[0];
    }
  }
}

TEST(Records, ArrayJsonlAndLampGoldsAgree) {
  const ScratchDir dir("percetrain-data");
  // LaMP's split layout: records without output, golds joined by id (string or number ids).
  write_file(dir / "questions.json",
             R"([{"id": "7", "input": "Generate a headline for the following article: Rain in Spain.", "profile": [{"title": "Sun", "text": "Sun in Spain.", "id": "70"}]},
                 {"id": 8, "input": "Generate a headline for the following article: Snow.", "profile": []}])");
  write_file(dir / "golds.json", R"({"task": "LaMP_4", "golds": [{"id": "8", "output": "Snow!"}, {"id": "7", "output": "Rain!"}]})");
  DataConfig c;
  c.preset = "lamp4";
  DatasetStats stats;
  const auto ex = load_paired_examples(c, (dir / "questions.json").string(), (dir / "golds.json").string(),
                                       demo_tokenizer(), &stats);
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0].id, "7");
  EXPECT_EQ(ex[0].response_text, "Rain!");
  EXPECT_EQ(ex[1].response_text, "Snow!");
  EXPECT_EQ(ex[1].personalised, ex[1].counterfactual);  // empty profile
  EXPECT_NE(ex[0].personalised, ex[0].counterfactual);

  write_file(dir / "golds_missing.json", R"({"golds": [{"id": "7", "output": "Rain!"}]})");
  EXPECT_THROW(load_paired_examples(c, (dir / "questions.json").string(), (dir / "golds_missing.json").string(),
                                    demo_tokenizer(), nullptr),
               Error);

  // The same records as JSONL and as an array give the same examples; max_records stops early.
  DataConfig r = review_config();
  write_file(dir / "a.jsonl", std::string(kGoodRecord) + "\n\n" + kGoodRecord + "\n");
  write_file(dir / "a.json", "[\n" + std::string(kGoodRecord) + ",\n" + kGoodRecord + "\n]\n");
  const auto a = load_paired_examples(r, (dir / "a.jsonl").string(), "", demo_tokenizer(), nullptr);
  const auto b = load_paired_examples(r, (dir / "a.json").string(), "", demo_tokenizer(), nullptr);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(a[1].personalised, b[1].personalised);
  r.max_records = 1;
  EXPECT_EQ(load_paired_examples(r, (dir / "a.json").string(), "", demo_tokenizer(), nullptr).size(), 1u);
  EXPECT_EQ(count_records((dir / "a.json").string()), 2);
  write_file(dir / "empty.json", " [ ] ");
  EXPECT_EQ(count_records((dir / "empty.json").string()), 0);
  write_file(dir / "broken.json", "[" + std::string(kGoodRecord));
  EXPECT_THROW(count_records((dir / "broken.json").string()), Error);
}

// For every demo record: the response ids are the same in both sequences, equal to the output
// tokenised on its own (+ EOS), and the personal spans fall on response tokens.
void check_demo_set(const Tokenizer& tok) {
  DataConfig c = review_config();
  c.max_length = 4096;
  for (const char* split : {"train", "valid", "test"}) {
    const std::string file = (source_dir() / "data" / "demo" / (std::string(split) + ".jsonl")).string();
    DatasetStats stats;
    const auto examples = load_paired_examples(c, file, "", tok, &stats);
    EXPECT_EQ(stats.skipped, 0);
    EXPECT_EQ(static_cast<int64_t>(examples.size()), count_records(file));
    for (const auto& ex : examples) {
      ASSERT_GT(ex.response_length, 0);
      const auto response = tail(ex.personalised, ex.response_length);
      ASSERT_EQ(response, tail(ex.counterfactual, ex.response_length)) << ex.id;
      std::vector<int> expected = tok.encode(ex.response_text, false);
      expected.push_back(tok.eos_id());
      ASSERT_EQ(response, expected) << ex.id;
      // A fifth of the training records come without their profile; held-out ones always have one.
      if (ex.profile_items > 0) ASSERT_GT(ex.personalised.size(), ex.counterfactual.size()) << ex.id;
      else ASSERT_EQ(ex.personalised, ex.counterfactual) << ex.id;
      if (std::string(split) != "train") ASSERT_GT(ex.profile_items, 0) << ex.id;
      ASSERT_FALSE(ex.personal_spans.empty()) << ex.id;
    }
  }
}

TEST(DemoSet, ResponseIdsIdenticalSentencePieceDemo) { check_demo_set(demo_tokenizer()); }

// Suites that need files from outside the repository are named apart, so that CTest reports them
// skipped without hiding that the rest passed.
TEST(DemoSetRealTokenizers, ResponseIdsIdenticalLlama2) {
  const fs::path model = testing_util::shared_fixtures_dir() / "llama2-tokenizer.model";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is absent (the real Llama 2 tokenizer)";
  check_demo_set(*load_tokenizer(model.string()));
}

TEST(DemoSetRealTokenizers, ResponseIdsIdenticalByteLevelBpe) {
  for (const char* name : {"qwen3-tokenizer", "llama3-tokenizer"}) {
    const fs::path dir = testing_util::shared_fixtures_dir() / name;
    if (!fs::exists(dir / "tokenizer.json")) GTEST_SKIP() << dir << " is absent (a real byte-level BPE tokenizer.json)";
    SCOPED_TRACE(dir.string());
    check_demo_set(*load_tokenizer(dir.string()));
  }
}

TEST(DemoSet, TokenSpansCoverTheResponseAndPersonalWords) {
  DataConfig c = review_config();
  const std::string file = (source_dir() / "data" / "demo" / "test.jsonl").string();
  const auto examples = load_paired_examples(c, file, "", demo_tokenizer(), nullptr);
  ASSERT_FALSE(examples.empty());
  for (size_t i = 0; i < 5; ++i) {
    const auto& ex = examples[i];
    const auto spans = response_token_spans(demo_tokenizer(), ex);
    ASSERT_EQ(spans.size(), static_cast<size_t>(ex.response_length));
    EXPECT_EQ(spans.front().first, 0);
    EXPECT_EQ(spans.back().second, static_cast<int64_t>(ex.response_text.size()));
    for (size_t t = 1; t < spans.size(); ++t) EXPECT_EQ(spans[t].first, spans[t - 1].second);
    // A personal span starts at a token boundary (the demo text puts a space before each word),
    // give or take the space the token carries.
    for (const auto& ps : ex.personal_spans) {
      bool found = false;
      for (const auto& s : spans) found |= s.first == ps.first || s.first + 1 == ps.first;
      EXPECT_TRUE(found) << ex.id << " span " << ps.first;
    }
  }
}

}  // namespace
}  // namespace percetrain
