// init-model's shape options: preset_model_config overrides and their errors, and the binary.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <fstream>
#include <string>

#include "percetrain/model/config.hpp"
#include "test_util.hpp"

namespace percetrain {
namespace {

using testing_util::throws_error;

TEST(PresetModelConfig, OverridesReplaceThePresetAndKeepItsHeadDimRule) {
  ModelShapeOverrides o;
  o.hidden_size = 96;
  o.num_hidden_layers = 3;
  o.num_attention_heads = 6;
  o.num_key_value_heads = 3;
  o.intermediate_size = 200;
  const ModelConfig llama = preset_model_config("llama", "tiny", 100, o);
  EXPECT_EQ(llama.hidden_size, 96);
  EXPECT_EQ(llama.num_hidden_layers, 3);
  EXPECT_EQ(llama.num_attention_heads, 6);
  EXPECT_EQ(llama.num_key_value_heads, 3);
  EXPECT_EQ(llama.intermediate_size, 200);
  EXPECT_EQ(llama.head_dim, 16);                                         // 96 / 6
  EXPECT_EQ(preset_model_config("qwen3", "tiny", 100, o).head_dim, 32);  // qwen3 presets: twice that
  o.head_dim = 8;
  EXPECT_EQ(preset_model_config("qwen3", "tiny", 100, o).head_dim, 8);
  // Without overrides the preset is unchanged.
  const ModelConfig tiny = preset_model_config("llama", "tiny", 100);
  EXPECT_EQ(tiny.hidden_size, 64);
  EXPECT_EQ(tiny.num_hidden_layers, 2);
  EXPECT_EQ(tiny.head_dim, 16);
}

// Found by fuzzing config.json (fuzz/model_config.cpp): nlohmann reports a number beyond double
// as out_of_range, which escaped parse_json's handler and ended the program.
TEST(ModelConfigJson, NumberBeyondDoubleIsOneClearError) {
  const std::string text = R"({"model_type": "llama", "rms_norm_eps": 1e10000.0})";
  EXPECT_TRUE(throws_error([&] { parse_model_config(text, "config.json"); },
                           "config.json: not valid JSON: number overflow parsing '1e10000'"));
}

TEST(PresetModelConfig, InvalidShapesAreOneClearError) {
  ModelShapeOverrides zero;
  zero.num_hidden_layers = 0;
  EXPECT_TRUE(throws_error([&] { preset_model_config("llama", "tiny", 100, zero); },
                           "--layers: must be a positive integer, got 0"));
  ModelShapeOverrides odd_heads;
  odd_heads.num_attention_heads = 5;  // 64 hidden
  EXPECT_TRUE(throws_error([&] { preset_model_config("llama", "tiny", 100, odd_heads); },
                           "hidden size 64 is not a multiple of the 5 attention heads"));
  ModelShapeOverrides kv;
  kv.num_attention_heads = 8;
  kv.num_key_value_heads = 3;
  EXPECT_TRUE(throws_error([&] { preset_model_config("llama", "tiny", 100, kv); },
                           "--kv-heads: 8 attention heads are not a multiple of 3 key/value heads"));
  ModelShapeOverrides few_heads;  // tiny has 2 kv heads; 1 query head cannot share them
  few_heads.num_attention_heads = 1;
  EXPECT_TRUE(throws_error([&] { preset_model_config("llama", "tiny", 100, few_heads); }, "--kv-heads"));
  ModelShapeOverrides odd_dim;
  odd_dim.head_dim = 7;
  EXPECT_TRUE(throws_error([&] { preset_model_config("qwen3", "tiny", 100, odd_dim); }, "--head-dim: head dimension 7 is odd"));
  ModelShapeOverrides negative;
  negative.hidden_size = -64;
  EXPECT_TRUE(throws_error([&] { preset_model_config("llama", "tiny", 100, negative); }, "--hidden-size"));
}

std::string run_cli(const std::string& args, int* status) {
  const std::string command = std::string(PERCETRAIN_BINARY) + " " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string out;
  char buffer[4096];
  while (pipe && std::fgets(buffer, sizeof buffer, pipe)) out += buffer;
  *status = pipe ? ::pclose(pipe) : -1;
  return out;
}

TEST(InitModelCli, ShapeOptionsReachConfigJsonAndBadOnesFail) {
  testing_util::ScratchDir dir("init-model");
  const std::string tokenizer = (testing_util::source_dir() / "data" / "tokenizer").string();
  const std::string out = (dir.path() / "m").string();
  int status = 0;
  std::string text = run_cli("init-model --arch mistral --tokenizer " + tokenizer + " --out " + out +
                                 " --hidden-size 48 --layers 1 --heads 6 --kv-heads 2 --intermediate-size 64 --head-dim 12",
                             &status);
  ASSERT_EQ(status, 0) << text;
  EXPECT_NE(text.find("hidden 48, 1 layers, 6/2 heads of 12, MLP 64"), std::string::npos) << text;
  const auto config = nlohmann::json::parse(std::ifstream(out + "/config.json"));
  EXPECT_EQ(config["hidden_size"], 48);
  EXPECT_EQ(config["num_hidden_layers"], 1);
  EXPECT_EQ(config["num_attention_heads"], 6);
  EXPECT_EQ(config["num_key_value_heads"], 2);
  EXPECT_EQ(config["intermediate_size"], 64);
  EXPECT_EQ(config["head_dim"], 12);
  // The folder loads back through the strict config reader.
  EXPECT_EQ(load_model_config(out + "/config.json").head_dim, 12);

  text = run_cli("init-model --arch llama --tokenizer " + tokenizer + " --out " + out + "2 --heads 8 --kv-heads 3", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(text.find("percetrain: error: --kv-heads: 8 attention heads are not a multiple of 3"), std::string::npos)
      << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;  // one line
  text = run_cli("init-model --arch llama --tokenizer " + tokenizer + " --out " + out + "2 --hidden-size 0", &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << status;  // refused by the parser: a usage error
  EXPECT_NE(text.find("--hidden-size: must be a whole number >= 1, not '0'"), std::string::npos) << text;
}

}  // namespace
}  // namespace percetrain
