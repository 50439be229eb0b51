// The field table (src/config/config_fields.hpp) is the one list of config keys: every member of
// every section struct must be in it, and every key it lists must parse, print and take --set.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
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
  EXPECT_TRUE(table_covers<DistributedSection>("train.distributed"));
  EXPECT_TRUE(table_covers<EvalGenerateSection>("train.eval_generate"));
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
    std::string pointer_text = "/" + key;
    std::replace(pointer_text.begin(), pointer_text.end(), '.', '/');
    const auto pointer = nlohmann::json::json_pointer(pointer_text);
    ASSERT_TRUE(effective.contains(pointer)) << key << " is missing from the effective config";
    // --set with the value the effective config prints is accepted and changes nothing.
    const std::string assignment = key + "=" + effective.at(pointer).dump();
    std::string error = testing_util::job_config_error(R"({"model": {"path": "/m"}})", {assignment});
    EXPECT_EQ(error, "") << assignment;
  }
  // And the effective config lists nothing else (nested sections count their leaves).
  std::function<size_t(const nlohmann::json&)> leaves = [&](const nlohmann::json& j) -> size_t {
    if (!j.is_object()) return 1;
    size_t n = 0;
    for (const auto& item : j.items()) n += leaves(item.value());
    return n;
  };
  EXPECT_EQ(leaves(effective), keys.size());
}

TEST(JobConfigFields, NestedSectionsParseTakeSetAndRejectUnknownKeys) {
  const std::string base = R"({"model": {"path": "/m"}, "data": {"valid_file": "v.jsonl"},
                              "train": {"eval_generate": {"every": 20, "max_records": 8}}})";
  const JobConfig c = parse_job_config(base, "/jobs/job.json", {"train.eval_generate.max_new_tokens=48"});
  EXPECT_EQ(c.train.eval_generate.every, 20);
  EXPECT_EQ(c.train.eval_generate.max_records, 8);
  EXPECT_EQ(c.train.eval_generate.max_new_tokens, 48);
  const auto keys = job_config_keys();
  EXPECT_NE(std::find(keys.begin(), keys.end(), "train.eval_generate.every"), keys.end());
  const auto effective = nlohmann::json::parse(job_config_to_json(c));
  EXPECT_EQ(effective["train"]["eval_generate"]["max_new_tokens"], 48);

  const std::string typo = testing_util::job_config_error(R"({"model": {"path": "m"}, "train": {"eval_generate": {"evry": 5}}})");
  EXPECT_NE(typo.find("train.eval_generate.evry"), std::string::npos) << typo;
  EXPECT_NE(typo.find("every"), std::string::npos) << typo;
  const std::string set_typo = testing_util::job_config_error(R"({"model": {"path": "m"}})", {"train.eval_generate.everyy=3"});
  EXPECT_NE(set_typo.find("did you mean 'train.eval_generate.every'?"), std::string::npos) << set_typo;
  const std::string range = testing_util::job_config_error(R"({"model": {"path": "m"}})", {"train.eval_generate.max_new_tokens=0"});
  EXPECT_NE(range.find("--set train.eval_generate.max_new_tokens=0: 0 is out of range: it must be at least 1"), std::string::npos)
      << range;
}

TEST(JobConfigFields, BestMetricEarlyStoppingAndRho1NeedTheirCompanions) {
  const std::string base = R"({"model": {"path": "m"}})";
  const std::string rouge = testing_util::job_config_error(base, {"train.best_metric=valid_rougeL"});
  EXPECT_NE(rouge.find("--set train.best_metric=valid_rougeL: 'valid_rougeL' is measured by validation by generation, which is off"),
            std::string::npos)
      << rouge;
  EXPECT_EQ(testing_util::job_config_error(base, {"train.best_metric=valid_rougeL", "train.eval_generate.every=10"}), "");
  EXPECT_EQ(testing_util::job_config_error(base, {"train.best_metric=valid_ce", "train.early_stopping_patience=3"}), "");
  const std::string patience = testing_util::job_config_error(base, {"train.early_stopping_patience=3"});
  EXPECT_NE(patience.find("--set train.early_stopping_patience=3: needs train.best_metric"), std::string::npos) << patience;
  const std::string metric = testing_util::job_config_error(base, {"train.best_metric=valid_rouge"});
  EXPECT_NE(metric.find("did you mean 'valid_rougeL'?"), std::string::npos) << metric;
  const std::string rho1 = testing_util::job_config_error(base, {"objective.name=rho1"});
  EXPECT_NE(rho1.find("objective.reference_model: is required for rho1"), std::string::npos) << rho1;
  EXPECT_EQ(testing_util::job_config_error(base, {"objective.name=rho1", "objective.reference_model=ref"}), "");
  const std::string ratio = testing_util::job_config_error(base, {"objective.rho1_keep_ratio=0"});
  EXPECT_NE(ratio.find("--set objective.rho1_keep_ratio=0: 0 is out of range: it must be in (0, 1]"), std::string::npos) << ratio;
  const std::string scope = testing_util::job_config_error(base, {"objective.pir_scope=words"});
  EXPECT_NE(scope.find("did you mean 'word'?"), std::string::npos) << scope;
}

TEST(JobConfigFields, OutOfRangeValuesNameTheKeyAndTheRange) {
  const std::string base = R"({"model": {"path": "m"}})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train.max_steps=-1", "--set train.max_steps=-1: -1 is out of range: it must be at least 0"},
      {"train.beta1=2", "--set train.beta1=2: 2 is out of range: it must be in [0, 1)"},
      {"train.beta2=-0.1", "--set train.beta2=-0.1: -0.1 is out of range"},
      {"train.adam_eps=-1e-8", "--set train.adam_eps=-1e-8: -1e-08 is out of range: it must be greater than 0"},
      {"train.weight_decay=-0.1", "--set train.weight_decay=-0.1: -0.1 is out of range"},
      {"train.save_every=-5", "--set train.save_every=-5: -5 is out of range"},
      {"train.grad_clip=-1", "--set train.grad_clip=-1: -1 is out of range"},
      {"generate.top_p=0", "--set generate.top_p=0: 0 is out of range: it must be in (0, 1]"},
      {"data.max_length=4", "--set data.max_length=4: 4 is out of range: it must be at least 8"},
      {"lora.rank=-1", "--set lora.rank=-1: -1 is out of range: it must be at least 0"},
      {"lora.alpha=0", "--set lora.alpha=0: 0 is out of range: it must be greater than 0"},
      {"lora.dropout=1", "--set lora.dropout=1: 1 is out of range: it must be in [0, 1)"},
  };
  for (const auto& [assignment, expected] : cases) {
    const std::string error = testing_util::job_config_error(base, {assignment});
    EXPECT_NE(error.find(expected), std::string::npos) << assignment << " -> " << error;
  }
  const std::string typo = testing_util::job_config_error(base, {"objective.name=percee"});
  EXPECT_NE(typo.find("--set objective.name=percee: 'percee' is not allowed (did you mean 'perce'? use ce, perce, lossce, entce, dft, rho1 or weights_from_data)"),
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
