// Validation by generation during training (train.eval_generate, best_metric valid_rougeL) on the
// demo set, checked against `generate` + `eval` run separately on the final model; and PerCE with
// word-scope PIR through the whole training job.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "percetrain/config/job_config.hpp"
#include "percetrain/eval/evaluation.hpp"
#include "percetrain/generate/generate_job.hpp"
#include "percetrain/train/trainer.hpp"
#include "percetrain/train/validation_monitor.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace percetrain;

namespace {

std::vector<json> generate_metric_rows(const fs::path& run, const std::string& key) {
  std::ifstream in(run / "metrics.jsonl");
  std::vector<json> rows;
  for (std::string line; std::getline(in, line);) {
    auto j = json::parse(line);
    if (j.contains(key)) rows.push_back(j);
  }
  return rows;
}

TEST(BestTracker, DirectionTiesAndPatience) {
  BestTracker ce(BestMetric::kValidCe, 2);
  EXPECT_TRUE(ce.observe({{"step", 1}, {"valid_ce", 3.0}}));
  EXPECT_FALSE(ce.observe({{"step", 2}, {"loss", 1.0}})) << "rows without the metric are no evaluation";
  EXPECT_TRUE(ce.observe({{"step", 2}, {"valid_ce", 2.5}}));
  EXPECT_FALSE(ce.observe({{"step", 3}, {"valid_ce", 2.5}})) << "a tie is no improvement";
  EXPECT_FALSE(ce.exhausted());
  EXPECT_FALSE(ce.observe({{"step", 4}, {"valid_ce", 2.6}}));
  EXPECT_TRUE(ce.exhausted());
  EXPECT_EQ(ce.best_step(), 2);
  EXPECT_EQ(ce.best(), 2.5);

  BestTracker rouge(BestMetric::kValidRougeL, 0);
  EXPECT_TRUE(rouge.observe({{"step", 5}, {"valid_rougeL", 0.2}}));
  EXPECT_FALSE(rouge.observe({{"step", 6}, {"valid_rougeL", 0.1}})) << "higher is better for ROUGE-L";
  EXPECT_TRUE(rouge.observe({{"step", 7}, {"valid_rougeL", 0.3}}));
  for (int i = 0; i < 10; ++i) rouge.observe({{"step", 8 + i}, {"valid_rougeL", 0.0}});
  EXPECT_FALSE(rouge.exhausted()) << "patience 0: never stops";

  BestTracker none(BestMetric::kNone, 0);
  EXPECT_FALSE(none.observe({{"step", 1}, {"valid_ce", 1.0}}));
}

TEST(EvalGenerate, LogsTheRougeAndMeteorThatGenerateAndEvalGiveTheModel) {
  testing_util::ScratchDir dir;
  const auto run = dir / "run";
  JobConfig config = load_job_config((testing_util::source_dir() / "configs" / "demo.json").string(),
                                     {"model.path=" + (dir / "model").string(), "output.dir=" + run.string(),
                                      "train.max_steps=6", "train.log_every=1000", "train.save_every=0",
                                      "train.eval_generate.every=3", "train.eval_generate.max_records=4",
                                      "train.eval_generate.max_new_tokens=16", "train.best_metric=valid_rougeL"});
  TrainOptions quiet;
  quiet.progress = false;
  const auto summary = run_training(config, quiet);
  ASSERT_FALSE(summary.final_model_dir.empty());

  const auto rows = generate_metric_rows(run, "valid_rougeL");
  ASSERT_EQ(rows.size(), 2u) << "steps 3 and 6";
  EXPECT_EQ(rows[0]["step"], 3);
  EXPECT_EQ(rows[1]["step"], 6);
  size_t best = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i]["generate_records"], 4);
    for (const char* key : {"valid_rougeL", "valid_meteor"}) {
      EXPECT_GE(rows[i][key].get<double>(), 0.0);
      EXPECT_LE(rows[i][key].get<double>(), 1.0);
    }
    if (rows[i]["valid_rougeL"].get<double>() > rows[best]["valid_rougeL"].get<double>()) best = i;
  }
  std::ifstream about_file(run / "best" / "best_metric.json");
  const auto about = json::parse(about_file);
  EXPECT_EQ(about["metric"], "valid_rougeL");
  EXPECT_EQ(about["step"], rows[best]["step"]);
  EXPECT_TRUE(fs::exists(run / "best" / "model.safetensors"));

  // The same numbers from the commands a user would run on final/: greedy generate, then eval.
  JobConfig decode = config;
  decode.model.path = summary.final_model_dir;
  decode.generate.temperature = 0.0;
  decode.generate.max_new_tokens = 16;
  GenerateJobOptions g;
  g.data = config.data.valid_file;
  g.out = (dir / "predictions.jsonl").string();
  g.limit = 4;
  run_generation(decode, g);
  const auto join = eval::join_by_id(eval::load_predictions(g.out), eval::load_references(config.data.valid_file));
  ASSERT_EQ(join.examples.size(), 4u);
  const auto report = eval::evaluate(join, eval::EvalOptions{});
  EXPECT_NEAR(report.means.at("rougeL"), rows[1]["valid_rougeL"].get<double>(), 1e-12);
  EXPECT_NEAR(report.means.at("meteor"), rows[1]["valid_meteor"].get<double>(), 1e-12);
  std::cout << "valid ROUGE-L after 3 / 6 steps: " << rows[0]["valid_rougeL"] << " / " << rows[1]["valid_rougeL"]
            << "; generate + eval on final/: " << report.means.at("rougeL") << "\n";
}

TEST(EvalGenerate, WordScopePirTrainsThroughTheWholeJob) {
  testing_util::ScratchDir dir;
  auto job = [&](const std::string& scope) {
    return load_job_config((testing_util::source_dir() / "configs" / "demo.json").string(),
                           {"model.path=" + (dir / "model").string(), "output.dir=" + (dir / scope).string(),
                            "train.max_steps=2", "train.log_every=1", "data.valid_file=", "objective.pir_scope=" + scope,
                            "objective.clip_min=0", "objective.clip_max=100"});
  };
  TrainOptions quiet;
  quiet.progress = false;
  run_training(job("token"), quiet);
  run_training(job("word"), quiet);
  // The first step starts from the same model on the same examples: CE is the same, the PIR the
  // weights come from is not (continuation pieces take their word's first-piece PIR).
  const auto token = generate_metric_rows(dir / "token", "pir_mean"), word = generate_metric_rows(dir / "word", "pir_mean");
  ASSERT_EQ(token.size(), 2u);
  ASSERT_EQ(word.size(), 2u);
  EXPECT_EQ(token[0]["ce"], word[0]["ce"]);
  EXPECT_NE(token[0]["pir_mean"], word[0]["pir_mean"]);
}

}  // namespace
