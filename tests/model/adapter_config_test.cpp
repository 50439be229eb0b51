// adapter_config.json parsing alone (model/adapter_config.hpp): PEFT's files, and the inputs
// fuzzing found (fuzz/adapter_config.cpp). The adapters themselves are tested in lora_test.cpp.
#include <gtest/gtest.h>

#include <string>

#include "model/adapter_config.hpp"
#include "test_util.hpp"

namespace percetrain {
namespace {

using testing_util::throws_error;

TEST(AdapterConfig, ReadsPeftsFile) {
  const auto path = testing_util::golden_dir() / "models" / "llama" / "lora" / "adapter_config.json";
  const AdapterConfig config = parse_adapter_config(testing_util::read_file(path), path.string());
  EXPECT_EQ(config.lora.rank, 4);
  EXPECT_EQ(config.lora.alpha, 8.0);
  EXPECT_EQ(config.lora.target_modules, (std::vector<std::string>{"q_proj", "v_proj", "down_proj"}));
  EXPECT_TRUE(config.targets_known);
  EXPECT_TRUE(config.layers.empty());
}

TEST(AdapterConfig, RankBeyondAnyLayerIsOneClearError) {
  const auto parse = [](const std::string& r) {
    return [r] { parse_adapter_config(R"({"peft_type": "LORA", "lora_alpha": 8, "r": )" + r + "}", "a.json"); };
  };
  // 1e300 reached a double -> int64 conversion, which is undefined behaviour (found by fuzzing).
  EXPECT_TRUE(throws_error(parse("1e300"), "a.json: r: must be a positive integer of at most 65536"));
  EXPECT_TRUE(throws_error(parse("18446744073709551615"), "a.json: r: must be a positive integer"));
  EXPECT_TRUE(throws_error(parse("65537"), "a.json: r: must be a positive integer"));
  EXPECT_EQ(parse_adapter_config(R"({"peft_type": "LORA", "lora_alpha": 8, "r": 65536})", "a.json").lora.rank, 65536);
  EXPECT_TRUE(throws_error(parse("1e10000"), "a.json: not valid JSON"));
}

}  // namespace
}  // namespace percetrain
