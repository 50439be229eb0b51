// The job config's "generate" section: defaults (the paper's decoding settings), values, errors.
#include <gtest/gtest.h>

#include <string>

#include "percetrain/config/job_config.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

using namespace percetrain;

namespace {

const std::string kModel = R"("model": {"path": "m"})";


TEST(GenerateSection, DefaultsAreThePaperSettings) {
  const JobConfig c = parse_job_config("{" + kModel + "}", "job.json");
  EXPECT_EQ(c.generate.max_new_tokens, 512);
  EXPECT_DOUBLE_EQ(c.generate.temperature, 0.4);
  EXPECT_DOUBLE_EQ(c.generate.top_p, 1.0);
  EXPECT_EQ(c.generate.top_k, 0);
  EXPECT_TRUE(c.generate.stop_strings.empty());
  EXPECT_NE(job_config_to_json(c).find("\"max_new_tokens\": 512"), std::string::npos);
}

TEST(GenerateSection, ValuesAndOverrides) {
  const JobConfig c = parse_job_config(
      "{" + kModel + R"(, "generate": {"max_new_tokens": 64, "temperature": 0, "top_p": 0.9,
                        "top_k": 50, "seed": 7, "stop_strings": ["\n\n", "User:"], "batch_size": 2}})",
      "job.json", {"generate.top_k=5"});
  EXPECT_EQ(c.generate.max_new_tokens, 64);
  EXPECT_DOUBLE_EQ(c.generate.temperature, 0.0);
  EXPECT_DOUBLE_EQ(c.generate.top_p, 0.9);
  EXPECT_EQ(c.generate.top_k, 5);
  EXPECT_EQ(c.generate.seed, 7u);
  EXPECT_EQ(c.generate.stop_strings, (std::vector<std::string>{"\n\n", "User:"}));
  EXPECT_EQ(c.generate.batch_size, 2);
}

TEST(GenerateSection, BadValuesAreClearErrors) {
  auto with = [](const std::string& body) { return "{" + kModel + R"(, "generate": {)" + body + "}}"; };
  EXPECT_NE(testing_util::job_config_error(with(R"("top_p": 0)")).find("generate.top_p"), std::string::npos);
  EXPECT_NE(testing_util::job_config_error(with(R"("top_p": 1.5)")).find("generate.top_p"), std::string::npos);
  EXPECT_NE(testing_util::job_config_error(with(R"("temperature": -1)")).find("generate.temperature"), std::string::npos);
  EXPECT_NE(testing_util::job_config_error(with(R"("max_new_tokens": 0)")).find("generate.max_new_tokens"), std::string::npos);
  EXPECT_NE(testing_util::job_config_error(with(R"("batch_size": 0)")).find("generate.batch_size"), std::string::npos);
  EXPECT_NE(testing_util::job_config_error(with(R"("stop_strings": "x")")).find("generate.stop_strings"), std::string::npos);
  EXPECT_NE(testing_util::job_config_error(with(R"("stop_strings": [""])")).find("generate.stop_strings"), std::string::npos);
  const std::string typo = testing_util::job_config_error(with(R"("max_new_token": 5)"));
  EXPECT_NE(typo.find("max_new_token"), std::string::npos);
  EXPECT_NE(typo.find("max_new_tokens"), std::string::npos) << typo;
}

}  // namespace
