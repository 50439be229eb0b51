// Job configs: every shipped config parses, unknown keys name the closest known key, --set
// overrides and relative paths.
#include <gtest/gtest.h>

#include <filesystem>

#include "percetrain/config/job_config.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace percetrain;

namespace {


TEST(JobConfig, EveryShippedConfigParses) {
  int count = 0;
  for (const auto& dir : {testing_util::source_dir() / "configs", testing_util::source_dir() / "configs" / "longlamp"})
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.path().extension() == ".json") {
        EXPECT_NO_THROW(load_job_config(entry.path().string())) << entry.path();
        ++count;
      }
  EXPECT_GE(count, 7);
  auto paper = load_job_config((testing_util::source_dir() / "configs/longlamp/product_review-qwen3-4b.json").string());
  EXPECT_EQ(paper.data.top_k, 4);
  EXPECT_EQ(paper.data.max_length, 5000);
  EXPECT_EQ(paper.objective.clip_min, 0.8);
  EXPECT_EQ(paper.objective.clip_max, 5.0);
  EXPECT_EQ(paper.train.epochs, 3);
}

TEST(JobConfig, UnknownKeysNameTheClosestKnownKey) {
  const std::string msg = testing_util::job_config_error(R"({"model": {"path": "m"}, "train": {"learning_rate": 1e-5, "lr": 1e-5}})");
  EXPECT_NE(msg.find("train.learning_rate: unknown key"), std::string::npos) << msg;
  const std::string typo = testing_util::job_config_error(R"({"model": {"path": "m"}, "train": {"epohcs": 2}})");
  EXPECT_NE(typo.find("did you mean 'epochs'?"), std::string::npos) << typo;
  const std::string section = testing_util::job_config_error(R"({"model": {"path": "m"}, "objectve": {}})");
  EXPECT_NE(section.find("did you mean 'objective'?"), std::string::npos) << section;
}

TEST(JobConfig, ValuesAreValidated) {
  EXPECT_NE(testing_util::job_config_error(R"({"model": {"path": "m"}, "objective": {"name": "percee"}})").find("did you mean 'perce'"),
            std::string::npos);
  EXPECT_NE(testing_util::job_config_error(R"({"model": {"path": "m"}, "train": {"batch_size": 6, "micro_batch_size": 4}})")
                .find("multiple of micro_batch_size"),
            std::string::npos);
  EXPECT_NE(testing_util::job_config_error(R"({"model": {"path": "m"}, "train": {"lr": "fast"}})").find("wrong type"), std::string::npos);
  EXPECT_NE(testing_util::job_config_error(R"({"model": {}})").find("model.path: is required"), std::string::npos);
  EXPECT_NE(testing_util::job_config_error("{oops").find("not valid JSON"), std::string::npos);
  // nlohmann reports a number beyond double as out_of_range, not as a parse error (found by fuzzing).
  EXPECT_NE(testing_util::job_config_error(R"({"model": {"path": "m"}, "train": {"lr": 1e10000}})").find("not valid JSON"),
            std::string::npos);
}

TEST(JobConfig, OverridesAndRelativePaths) {
  auto c = parse_job_config(R"({"model": {"path": "m"}, "data": {"train_file": "d/train.jsonl"}})", "/srv/jobs/job.json",
                            {"train.lr=3e-4", "objective.name=ce", "output.dir=/out", "data.top_k=2"});
  EXPECT_EQ(c.train.lr, 3e-4);
  EXPECT_EQ(c.objective.name, ObjectiveKind::kCe);
  EXPECT_EQ(c.data.top_k, 2);
  EXPECT_EQ(c.model.path, "/srv/jobs/m");
  EXPECT_EQ(c.data.train_file, "/srv/jobs/d/train.jsonl");
  EXPECT_EQ(c.output.dir, "/out");
  EXPECT_NE(testing_util::job_config_error(R"({"model": {"path": "m"}})", {"train.lr"}).find("expected section.key=value"), std::string::npos);
  EXPECT_NE(testing_util::job_config_error(R"({"model": {"path": "m"}})", {"train.lrr=1"}).find("did you mean 'train.lr'"), std::string::npos);
  // The effective config round-trips through the parser.
  auto again = parse_job_config(job_config_to_json(c), "/srv/jobs/job.json");
  EXPECT_EQ(job_config_to_json(again), job_config_to_json(c));
}

}  // namespace
