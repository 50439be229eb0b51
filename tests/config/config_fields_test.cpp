// The field table (src/config/config_fields.hpp) is the one list of config keys: every member of
// every section struct must be in it, and every key it lists must parse, print and take --set.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config_fields.hpp"
#include "percetrain/config/job_config.hpp"
#include "test_util.hpp"

using namespace percetrain;

namespace {

// Records the bytes each described member occupies inside its section struct.
struct Coverage {
  const char* base;
  struct Member {
    size_t offset, size, align;
    std::string key;
  };
  std::vector<Member> members;

  template <class T>
  void add(const char* key, T& member) {
    members.push_back({static_cast<size_t>(reinterpret_cast<const char*>(&member) - base), sizeof(T), alignof(T), key});
  }
  template <class T>
  void operator()(const char* key, T& member, const Bounds& = {}) {
    add(key, member);
  }
  void path(const char* key, std::string& member) { add(key, member); }
  template <class S>
  void section(const char* key, S& member) {
    add(key, member);
  }
};

size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

// The members described, laid end to end with the padding their alignment needs, must fill the
// struct exactly: a member missing from the table leaves a gap larger than any padding.
template <class S>
::testing::AssertionResult table_covers(const char* name) {
  S section{};
  Coverage c{reinterpret_cast<const char*>(&section), {}};
  describe(section, c);
  std::sort(c.members.begin(), c.members.end(), [](const auto& a, const auto& b) { return a.offset < b.offset; });
  size_t end = 0;
  for (const auto& m : c.members) {
    if (m.offset != align_up(end, m.align))
      return ::testing::AssertionFailure() << name << ": bytes [" << end << ", " << m.offset << ") before '" << m.key
                                           << "' belong to no key of the field table";
    end = m.offset + m.size;
  }
  if (align_up(end, alignof(S)) != sizeof(S))
    return ::testing::AssertionFailure() << name << ": bytes [" << end << ", " << sizeof(S)
                                         << ") after the last key belong to no key of the field table";
  return ::testing::AssertionSuccess();
}

TEST(JobConfigFields, EveryMemberOfEverySectionIsInTheTable) {
  EXPECT_TRUE(table_covers<ModelSection>("model"));
  EXPECT_TRUE(table_covers<LoraSection>("lora"));
  EXPECT_TRUE(table_covers<TokenizerSection>("tokenizer"));
  EXPECT_TRUE(table_covers<DataConfig>("data"));
  EXPECT_TRUE(table_covers<ObjectiveSection>("objective"));
  EXPECT_TRUE(table_covers<TrainSection>("train"));
  EXPECT_TRUE(table_covers<GenerateSection>("generate"));
  EXPECT_TRUE(table_covers<OutputSection>("output"));
}

// The check itself: a struct with a member the table forgets is caught.
struct TwoFields {
  int64_t listed = 0;
  int64_t forgotten = 0;
};
template <class V>
void describe(TwoFields& s, V& v) {
  v("listed", s.listed);
}

TEST(JobConfigFields, TheCoverageCheckCatchesAForgottenMember) {
  EXPECT_FALSE(table_covers<TwoFields>("two"));
}

TEST(JobConfigFields, EveryKeyPrintsParsesAndTakesSet) {
  const JobConfig defaults = parse_job_config(R"({"model": {"path": "/m"}})", "/jobs/job.json");
  const auto effective = nlohmann::json::parse(job_config_to_json(defaults));
  const auto keys = job_config_keys();
  EXPECT_GT(keys.size(), 60u);
  for (const auto& key : keys) {
    const auto pointer = nlohmann::json::json_pointer("/" + std::string(key).replace(key.find('.'), 1, "/"));
    ASSERT_TRUE(effective.contains(pointer)) << key << " is missing from the effective config";
    // --set with the value the effective config prints is accepted and changes nothing.
    const std::string assignment = key + "=" + effective.at(pointer).dump();
    std::string error = testing_util::job_config_error(R"({"model": {"path": "/m"}})", {assignment});
    EXPECT_EQ(error, "") << assignment;
  }
  // And the effective config lists nothing else.
  size_t printed = 0;
  for (const auto& section : effective.items()) printed += section.value().size();
  EXPECT_EQ(printed, keys.size());
}

TEST(JobConfigFields, OutOfRangeValuesNameTheKeyAndTheRange) {
  const std::string base = R"({"model": {"path": "m"}})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train.max_steps=-1", "train.max_steps: -1 is out of range: it must be at least 0"},
      {"train.beta1=2", "train.beta1: 2 is out of range: it must be in [0, 1)"},
      {"train.beta2=-0.1", "train.beta2: -0.1 is out of range"},
      {"train.adam_eps=-1e-8", "train.adam_eps: -1e-08 is out of range: it must be greater than 0"},
      {"train.weight_decay=-0.1", "train.weight_decay: -0.1 is out of range"},
      {"train.save_every=-5", "train.save_every: -5 is out of range"},
      {"train.grad_clip=-1", "train.grad_clip: -1 is out of range"},
      {"generate.top_p=0", "generate.top_p: 0 is out of range: it must be in (0, 1]"},
      {"data.max_length=4", "data.max_length: 4 is out of range: it must be at least 8"},
      {"lora.rank=-1", "lora.rank: -1 is out of range: it must be at least 0"},
      {"lora.alpha=0", "lora.alpha: 0 is out of range: it must be greater than 0"},
      {"lora.dropout=1", "lora.dropout: 1 is out of range: it must be in [0, 1)"},
  };
  for (const auto& [assignment, expected] : cases) {
    const std::string error = testing_util::job_config_error(base, {assignment});
    EXPECT_NE(error.find(expected), std::string::npos) << assignment << " -> " << error;
  }
  const std::string typo = testing_util::job_config_error(base, {"objective.name=percee"});
  EXPECT_NE(typo.find("objective.name: 'percee' is not allowed (did you mean 'perce'? use ce, perce, lossce, entce, dft, rho1 or weights_from_data)"),
            std::string::npos)
      << typo;
}

TEST(JobConfigFields, LoraTargetModulesAreProjectionNamesWithAGuessForATypo) {
  const std::string base = R"({"model": {"path": "m"}, "lora": {"rank": 8)";
  EXPECT_EQ(testing_util::job_config_error(base + R"(, "target_modules": ["q_proj", "down_proj"]}})"), "");
  EXPECT_EQ(testing_util::job_config_error(base + R"(, "target_modules": ["all-linear"]}})"), "");
  const std::string typo = testing_util::job_config_error(base + R"(, "target_modules": ["q_proj", "gate_prj"]}})");
  EXPECT_NE(typo.find("lora.target_modules: 'gate_prj' is not a projection LoRA can adapt (did you mean 'gate_proj'?"),
            std::string::npos)
      << typo;
  const std::string head = testing_util::job_config_error(base + R"(, "target_modules": ["lm_head"]}})");
  EXPECT_NE(head.find("'lm_head' is not a projection LoRA can adapt"), std::string::npos) << head;
  const std::string empty = testing_util::job_config_error(base + R"(, "target_modules": []}})");
  EXPECT_NE(empty.find("lora.target_modules: names no module"), std::string::npos) << empty;
  // Absent, the section means full fine-tuning.
  EXPECT_FALSE(parse_job_config(R"({"model": {"path": "/m"}})", "/j.json").lora.enabled());
}

}  // namespace
