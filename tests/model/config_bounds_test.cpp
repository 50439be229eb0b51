// A hostile or mismatched config.json (or init-model size) is one error line naming the file and the
// key, before a model of its sizes is allocated; through the binary.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "test_util.hpp"

namespace percetrain {
namespace {

using namespace testing_util;
namespace fs = std::filesystem;

std::string tokenizer_folder() { return (source_dir() / "data" / "tokenizer").string(); }

// A tiny llama written by init-model, whose config.json `change` then edits.
class ConfigBounds : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto r = run_percetrain("init-model --arch llama --preset tiny --tokenizer " + tokenizer_folder() +
                                  " --out " + model().string());
    ASSERT_EQ(r.status, 0) << r.output;
  }
  fs::path model() const { return dir_ / "m"; }
  void change(const std::string& key, int64_t value) {
    auto config = nlohmann::json::parse(read_file(model() / "config.json"));
    config[key] = value;
    write_file(model() / "config.json", config.dump(2));
  }
  // logprobs loads the model and nothing else; `timeout` keeps a regression from filling memory.
  CommandResult load() const {
    return run_command("timeout 120 " + std::string(PERCETRAIN_BINARY) + " logprobs --model " + model().string() +
                       " --text 'a test'");
  }
  static void expect_one_line(const CommandResult& r, const std::string& what) {
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find(what), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }

  ScratchDir dir_{"config-bounds"};
};

TEST_F(ConfigBounds, AnAbsurdLayerCountIsRefusedBeforeAllocation) {
  change("num_hidden_layers", 1000000000);
  expect_one_line(load(), "config.json: 'num_hidden_layers' is 1000000000, more than percetrain's limit of 1024");
}

TEST_F(ConfigBounds, SizesAreCheckedAgainstTheStoredTensors) {
  change("num_hidden_layers", 1000);  // within the limit, but the weights hold 2 layers
  expect_one_line(load(), "config.json: 'num_hidden_layers' is 1000, but the weights hold layers model.layers.0 to "
                          "model.layers.1");
  change("num_hidden_layers", 2);
  change("vocab_size", 10000000);  // 2 x 10M x 64 floats were allocated before the weights were looked at
  expect_one_line(load(), "config.json: 'vocab_size' is 10000000, but model.embed_tokens.weight has");
  change("vocab_size", 4000);
  change("intermediate_size", 1000000);
  expect_one_line(load(), "config.json: 'intermediate_size' is 1000000, but model.layers.0.mlp.gate_proj.weight");
  change("intermediate_size", 176);
  change("num_attention_heads", 8);
  change("head_dim", 16);
  expect_one_line(load(), "config.json: 'num_attention_heads' is 8, but with head_dim 16 that needs 128 rows");
}

TEST_F(ConfigBounds, InitModelSizesAreBoundedAndMustFitInMemory) {
  const std::string init = "timeout 120 " + std::string(PERCETRAIN_BINARY) + " init-model --arch llama --tokenizer " +
                           tokenizer_folder() + " --out " + (dir_ / "big").string();
  auto r = run_command(init + " --layers 100000000 2>&1");
  expect_one_line(r, "--layers is 100000000, more than percetrain's limit of 1024");
  // Within every limit, but ~5e13 parameters: refused from the estimate, naming the option.
  r = run_command(init + " --layers 1000 --hidden-size 65536 --heads 512 --kv-heads 512 --intermediate-size 65536 2>&1");
  expect_one_line(r, "--layers 1000 makes a model of");
  EXPECT_NE(r.output.find("of memory available"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "big"));
}

}  // namespace
}  // namespace percetrain
