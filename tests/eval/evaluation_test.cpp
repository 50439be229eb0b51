// percetrain eval: loading, joining by id, errors, reports, --compare, and the binary end to end.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "percetrain/eval/evaluation.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace percetrain::eval {
namespace {

using testing_util::ScratchDir;

std::string write(const ScratchDir& dir, const std::string& name, const std::string& text) {
  const auto path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

// Runs `fn`, expecting a percetrain::Error whose message contains every string in `parts`.
template <typename Fn>
void expect_error(Fn fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    for (const auto& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(EvalLoad, PredictionsAndTheThreeReferenceShapes) {
  ScratchDir dir("eval");
  const auto preds = write(dir, "p.jsonl", "{\"id\": \"a\", \"prediction\": \"x y\", \"extra\": 1}\n\n{\"id\": 7, \"prediction\": \"z\"}\n");
  const auto p = load_predictions(preds);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[1].id, "7");  // integer ids compare as their decimal text
  EXPECT_EQ(p[1].text, "z");

  const auto jsonl = write(dir, "r.jsonl", "{\"id\":\"a\",\"input\":\"q\",\"output\":\"x\",\"profile\":[]}\n{\"id\":\"7\",\"output\":\"w\"}\n");
  const auto array = write(dir, "r.json", "[{\"id\":\"a\",\"output\":\"x\"},\n {\"id\":7,\"output\":\"w\"}]");
  const auto golds = write(dir, "golds.json", "{\"task\": \"LaMP_4\", \"golds\": [{\"id\":\"a\",\"output\":\"x\"},{\"id\":\"7\",\"output\":\"w\"}]}");
  for (const auto& path : {jsonl, array, golds}) {
    const auto r = load_references(path);
    ASSERT_EQ(r.size(), 2u) << path;
    EXPECT_EQ(r[0].id, "a");
    EXPECT_EQ(r[1].id, "7");
    EXPECT_EQ(r[1].text, "w");
  }
}

TEST(EvalLoad, BadInputIsOneClearError) {
  ScratchDir dir("eval");
  expect_error([&] { load_predictions((dir / "absent.jsonl").string()); }, {"absent.jsonl", "cannot read"});
  const auto bad = write(dir, "bad.jsonl", "{\"id\":\"a\",\"prediction\":\"x\"}\n{\"id\":\"b\",\"prediction\":\"y\"}\n{\"id\": oops}\n");
  expect_error([&] { load_predictions(bad); }, {"bad.jsonl:3", "not valid JSON"});
  const auto huge = write(dir, "huge.jsonl", "{\"id\":\"a\",\"prediction\":\"x\",\"score\":1e10000}\n");
  expect_error([&] { load_predictions(huge); }, {"huge.jsonl:1", "not valid JSON", "number overflow"});
  const auto no_field = write(dir, "nofield.jsonl", "{\"id\":\"a\",\"text\":\"x\"}\n");
  expect_error([&] { load_predictions(no_field); }, {"nofield.jsonl:1", "no \"prediction\""});
  const auto no_id = write(dir, "noid.jsonl", "{\"output\":\"x\"}\n");
  expect_error([&] { load_references(no_id); }, {"noid.jsonl:1", "no \"id\""});
  const auto not_string = write(dir, "ns.jsonl", "{\"id\":\"a\",\"output\":3}\n");
  expect_error([&] { load_references(not_string); }, {"ns.jsonl:1", "must be a string"});
  const auto empty = write(dir, "empty.jsonl", "\n");
  expect_error([&] { load_predictions(empty); }, {"no predictions"});
}

TEST(EvalJoin, MissingAndExtraIdsAreReported) {
  const std::vector<IdText> preds = {{"1", "a"}, {"3", "c"}, {"9", "z"}};
  const std::vector<IdText> refs = {{"1", "A"}, {"2", "B"}, {"3", "C"}, {"4", "D"}};
  const Join join = join_by_id(preds, refs);
  ASSERT_EQ(join.examples.size(), 2u);
  EXPECT_EQ(join.examples[1].id, "3");
  EXPECT_EQ(join.examples[1].prediction, "c");
  EXPECT_EQ(join.examples[1].reference, "C");
  EXPECT_EQ(join.missing, (std::vector<std::string>{"2", "4"}));
  EXPECT_EQ(join.extra, (std::vector<std::string>{"9"}));
  expect_error([&] { check_join(join, false, "p.jsonl", "r.jsonl"); }, {"2 reference id(s) have no prediction", "2, 4", "--allow-missing"});
  EXPECT_NO_THROW(check_join(join, true, "p.jsonl", "r.jsonl"));

  const Join only_extra = join_by_id(preds, {{"1", "A"}, {"3", "C"}});
  expect_error([&] { check_join(only_extra, false, "p.jsonl", "r.jsonl"); }, {"1 prediction id(s) are not in r.jsonl", "9"});
  const Join disjoint = join_by_id({{"x", "a"}}, {{"y", "b"}});
  expect_error([&] { check_join(disjoint, true, "p.jsonl", "r.jsonl"); }, {"no prediction id matches"});
  expect_error([&] { join_by_id({{"1", "a"}, {"1", "b"}}, refs); }, {"'1' appears more than once"});
  expect_error([&] { join_by_id(preds, {{"1", "a"}, {"1", "b"}}); }, {"'1' appears more than once"});
}

TEST(EvalReport, MeansJsonTableAndComparison) {
  const Join join = join_by_id({{"1", "the cat sat on the mat"}, {"2", ""}},
                               {{"1", "The cat sat on the mat."}, {"2", "a dog"}});
  const EvalReport report = evaluate(join, {});
  ASSERT_EQ(report.examples.size(), 2u);
  EXPECT_EQ(report.examples[0].rouge1, 1.0);
  EXPECT_EQ(report.examples[1].rouge1, 0.0);
  EXPECT_EQ(report.examples[1].meteor, 0.0);
  EXPECT_DOUBLE_EQ(report.means.at("rouge1"), 0.5);
  EXPECT_DOUBLE_EQ(report.means.at("rougeL"), 0.5);
  // METEOR of example 1: 6 of 7 reference tokens (the "." is one) in one chunk: P = 1, R = 6/7,
  // Fmean = (6/7) / (0.9 + 0.6/7), penalty 0.5 / 6^3; example 2 scores 0.
  const double fmean = (6.0 / 7) / (0.9 + 0.6 / 7);
  EXPECT_NEAR(report.means.at("meteor"), fmean * (1 - 0.5 / 216) / 2, 1e-12);

  // rougeLsum equals rougeL on one-line texts. BLEU is corpus-level and case-sensitive: example 1
  // "the cat sat on the mat" vs "The cat sat on the mat ." (7 tokens) matches 5/6, 4/5, 3/4, 2/3
  // n-grams ("the" once, not "The"); example 2 adds reference length 2 and nothing else:
  // c = 6, r = 9, BLEU = exp(1 - 9/6) * (5/6 * 4/5 * 3/4 * 2/3)^(1/4) * 100.
  const double bleu = 100 * std::exp(1 - 9.0 / 6) * std::pow(1.0 / 3, 0.25);
  EXPECT_DOUBLE_EQ(report.means.at("rougeLsum"), 0.5);
  EXPECT_NEAR(report.means.at("bleu"), bleu, 1e-9);

  ScratchDir dir("eval");
  const auto out = (dir / "metrics.json").string();
  write_report(report, out);
  const auto doc = nlohmann::json::parse(std::ifstream(out));
  EXPECT_EQ(doc["count"], 2);
  EXPECT_EQ(doc["examples"].size(), 2u);
  EXPECT_EQ(doc["examples"][1]["id"], "2");
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(entry.path().filename(), "metrics.json");  // no temporary left behind
  const auto means = read_metric_means(out);
  EXPECT_DOUBLE_EQ(means.at("rouge1"), 0.5);
  EXPECT_NEAR(means.at("bleu"), bleu, 1e-9);
  EXPECT_EQ(doc["bleu_detail"]["ref_len"], 9);
  EXPECT_DOUBLE_EQ(doc["examples"][0]["rougeLsum"].get<double>(), 1.0);

  EXPECT_NE(format_table(report).find("ROUGE-L     0.5000"), std::string::npos) << format_table(report);
  EXPECT_NE(format_table(report).find("BLEU"), std::string::npos);
  const std::string cmp = format_comparison({{"rouge1", 0.33}, {"rouge2", 0.1}, {"rougeL", 0.3}, {"meteor", 0.0}}, "perce.json",
                                            {{"rouge1", 0.30}, {"rouge2", 0.0}, {"rougeL", 0.3}, {"meteor", 0.2}}, "ce.json");
  EXPECT_NE(cmp.find("+10.0%"), std::string::npos) << cmp;   // (0.33 - 0.30) / 0.30
  EXPECT_NE(cmp.find("-100.0%"), std::string::npos) << cmp;  // (0 - 0.2) / 0.2
  EXPECT_NE(cmp.find("n/a"), std::string::npos) << cmp;      // baseline 0
  EXPECT_NE(cmp.find("+0.0%"), std::string::npos) << cmp;

  const auto not_metrics = write(dir, "x.json", "[1, 2]");
  expect_error([&] { read_metric_means(not_metrics); }, {"x.json", "not a JSON object"});
}

TEST(EvalLamp, WritesAndReadsLampPredictionFiles) {
  ScratchDir dir("eval");
  const auto preds = write(dir, "p.jsonl", "{\"id\": 310, \"prediction\": \"A <b> & \\\"c\\\"\"}\n{\"id\": \"x2\", \"prediction\": \"\"}\n");
  const auto loaded = load_predictions(preds);
  const auto doc = nlohmann::json::parse(lamp_predictions_json(loaded, "LaMP_4"));
  EXPECT_EQ(doc["task"], "LaMP_4");
  ASSERT_EQ(doc["golds"].size(), 2u);
  EXPECT_EQ(doc["golds"][0]["id"], "310");  // LaMP's ids are strings
  EXPECT_EQ(doc["golds"][0]["output"], "A <b> & \"c\"");
  EXPECT_EQ(doc["golds"][1]["output"], "");

  const auto lamp = (dir / "lamp.json").string();
  write_lamp_predictions(loaded, "LaMP_4", lamp);
  std::string task;
  const auto back = load_predictions(lamp, &task);  // eval reads LaMP predictions files too
  EXPECT_EQ(task, "LaMP_4");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].id, "310");
  EXPECT_EQ(back[0].text, loaded[0].text);
  load_predictions(preds, &task);
  EXPECT_EQ(task, "");

  expect_error([&] { write_lamp_predictions(loaded, "", lamp); }, {"--task", "LaMP_4"});
  EXPECT_NO_THROW(check_lamp_tasks("LaMP_4", "", "p", "r"));
  expect_error([&] { check_lamp_tasks("LaMP_4", "LaMP_5", "p.json", "golds.json"); },
               {"p.json", "'LaMP_4'", "golds.json", "'LaMP_5'"});
  const auto bad_task = write(dir, "bad.json", "{\"task\": 4, \"golds\": []}");
  expect_error([&] { load_predictions(bad_task); }, {"bad.json: task", "must be a string"});
}

// The binary sits beside the test executable (build/percetrain next to build/percetrain_tests).
std::string binary_path() {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return PERCETRAIN_BINARY;
  self[n] = '\0';
  return (std::filesystem::path(self).parent_path() / "percetrain").string();
}

std::pair<int, std::string> run(const std::string& args) {
  const auto r = testing_util::run_command(binary_path() + " " + args);
  return {r.status, r.output};
}

TEST(EvalCommand, EndToEnd) {
  if (!std::filesystem::exists(binary_path())) GTEST_SKIP() << "no binary at " << binary_path();
  ScratchDir dir("eval");
  const auto preds = write(dir, "p.jsonl", "{\"id\":\"1\",\"prediction\":\"the cat sat on the mat\"}\n{\"id\":\"2\",\"prediction\":\"a dog\"}\n");
  const auto refs = write(dir, "golds.json", "{\"golds\":[{\"id\":\"1\",\"output\":\"the cat sat on the mat\"},{\"id\":\"2\",\"output\":\"a dog barked\"},{\"id\":\"3\",\"output\":\"x\"}]}");
  auto [rc, out] = run("eval --predictions " + preds + " --references " + refs);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("percetrain: error: "), std::string::npos) << out;
  EXPECT_NE(out.find("1 reference id(s) have no prediction (3)"), std::string::npos) << out;

  const auto metrics = (dir / "m.json").string();
  std::tie(rc, out) = run("eval --allow-missing --predictions " + preds + " --references " + refs + " --out " + metrics);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("ROUGE-1"), std::string::npos) << out;
  EXPECT_NE(out.find("METEOR"), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(metrics));

  std::tie(rc, out) = run("eval --allow-missing --predictions " + preds + " --references " + refs + " --compare " + metrics);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("+0.0%"), std::string::npos) << out;

  std::tie(rc, out) = run("eval --allow-missing --predictions " + preds + " --references " + refs + " --json --wordnet /nonexistent");
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("wordnet-base"), std::string::npos) << out;

  // LaMP format: convert without references, then score the LaMP file; task names must agree.
  const auto lamp = (dir / "lamp.json").string();
  std::tie(rc, out) = run("eval --predictions " + preds + " --write-lamp " + lamp);
  EXPECT_EQ(rc, 2);  // a command-line mistake
  EXPECT_NE(out.find("--write-lamp requires --task"), std::string::npos) << out;
  std::tie(rc, out) = run("eval --predictions " + preds + " --write-lamp " + lamp + " --task LaMP_4");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(lamp))["golds"].size(), 2u);
  std::tie(rc, out) = run("eval --predictions " + preds);
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("--references is required"), std::string::npos) << out;
  const auto golds5 = write(dir, "golds5.json", "{\"task\":\"LaMP_5\",\"golds\":[{\"id\":\"1\",\"output\":\"the cat\"},{\"id\":\"2\",\"output\":\"a dog\"}]}");
  std::tie(rc, out) = run("eval --predictions " + lamp + " --references " + golds5);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("is for task 'LaMP_4'"), std::string::npos) << out;
  const auto golds4 = write(dir, "golds4.json", "{\"task\":\"LaMP_4\",\"golds\":[{\"id\":\"1\",\"output\":\"the cat sat on the mat\"},{\"id\":\"2\",\"output\":\"a dog\"}]}");
  std::tie(rc, out) = run("eval --predictions " + lamp + " --references " + golds4);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("ROUGE-Lsum  1.0000"), std::string::npos) << out;
}

}  // namespace
}  // namespace percetrain::eval
