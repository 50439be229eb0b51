// SentencePiece tokenizer: id-for-id parity with the reference library, and model-folder configs.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace percetrain {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kSourceDir = PERCETRAIN_SOURCE_DIR;
const std::string kLlama2Model = kSourceDir + "/../shared/fixtures/llama2-tokenizer.model";
const std::string kDemoModel = kSourceDir + "/data/tokenizer/tokenizer.model";
const std::string kGoldenDir = kSourceDir + "/tests/golden/tokenizer/";

struct Golden {
  std::string text;
  std::vector<int> ids;  // sp.encode(text), no BOS
  std::vector<std::string> pieces;
  std::string decoded;  // sp.decode(ids): the text itself unless it does not round-trip
};

std::vector<Golden> read_goldens(const std::string& file) {
  std::ifstream in(file);
  EXPECT_TRUE(in) << "cannot open " << file << " (scripts/make_tokenizer_goldens.py writes it)";
  std::vector<Golden> out;
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line);
    Golden g;
    g.text = j.at("text").get<std::string>();
    g.ids = j.at("ids").get<std::vector<int>>();
    g.pieces = j.at("pieces").get<std::vector<std::string>>();
    g.decoded = j.contains("decoded") ? j["decoded"].get<std::string>() : g.text;
    out.push_back(std::move(g));
  }
  return out;
}

json read_meta(const std::string& name) {
  std::ifstream in(kGoldenDir + "meta.json");
  EXPECT_TRUE(in) << "cannot open " << kGoldenDir << "meta.json";
  return json::parse(in).at(name);
}

std::string fnv1a64(const std::string& data) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (const unsigned char c : data) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

using testing_util::throws_error;

// ---------------------------------------------------------------------------------------------
// Parity with the reference sentencepiece library, for Llama 2's tokenizer and the demo's.

struct ModelCase {
  const char* name;
  const std::string* model;
  int vocab_size;
};

void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.name; }

class SentencePieceParity : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override {
    if (!fs::exists(*GetParam().model))
      GTEST_SKIP() << "tokenizer model not found at " << *GetParam().model
                   << " (the Llama 2 fixture lives outside the repository, in ../shared/fixtures/)";
    tok_ = load_sentencepiece_tokenizer(*GetParam().model);
    goldens_ = read_goldens(kGoldenDir + GetParam().name + "_ids.jsonl");
    ASSERT_GE(goldens_.size(), 200u);
  }
  std::unique_ptr<Tokenizer> tok_;
  std::vector<Golden> goldens_;
};

TEST_P(SentencePieceParity, EncodesLikeTheReference) {
  for (const Golden& g : goldens_) {
    SCOPED_TRACE("text: \"" + g.text + "\"");
    EXPECT_EQ(tok_->encode(g.text, false), g.ids);
    std::vector<int> with_bos{1};
    with_bos.insert(with_bos.end(), g.ids.begin(), g.ids.end());
    EXPECT_EQ(tok_->encode(g.text, true), with_bos);
  }
}

TEST_P(SentencePieceParity, DecodesLikeTheReference) {
  int round_trips = 0;
  for (const Golden& g : goldens_) {
    SCOPED_TRACE("text: \"" + g.text + "\"");
    EXPECT_EQ(tok_->decode(g.ids, true), g.decoded);
    EXPECT_EQ(tok_->decode(g.ids, false), g.decoded);
    EXPECT_EQ(tok_->decode(tok_->encode(g.text, true), true), g.decoded);
    round_trips += g.decoded == g.text;
  }
  EXPECT_GE(round_trips, static_cast<int>(goldens_.size()) - 8);  // only "▁" texts don't
}

TEST_P(SentencePieceParity, PiecesMatchTheReference) {
  for (const Golden& g : goldens_) {
    ASSERT_EQ(g.ids.size(), g.pieces.size());
    for (size_t i = 0; i < g.ids.size(); ++i) {
      EXPECT_EQ(tok_->id_to_piece(g.ids[i]), g.pieces[i]) << "id " << g.ids[i];
      EXPECT_EQ(tok_->piece_to_id(g.pieces[i]), g.ids[i]) << "piece " << g.pieces[i];
    }
  }
}

TEST_P(SentencePieceParity, VocabularyMatchesTheReference) {
  const json meta = read_meta(GetParam().name);
  ASSERT_EQ(tok_->vocab_size(), GetParam().vocab_size);
  EXPECT_EQ(tok_->vocab_size(), meta.at("vocab_size").get<int>());
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_EQ(tok_->eos_id(), 2);
  EXPECT_EQ(tok_->pad_id(), -1);
  EXPECT_TRUE(tok_->adds_bos());
  EXPECT_FALSE(tok_->adds_eos());

  std::string all;
  std::vector<int> special;
  for (int id = 0; id < tok_->vocab_size(); ++id) {
    const std::string piece = tok_->id_to_piece(id);
    if (id) all += '\n';
    all += piece;
    if (tok_->is_special(id)) special.push_back(id);
    ASSERT_EQ(tok_->piece_to_id(piece), id) << "piece " << piece;
  }
  EXPECT_EQ(fnv1a64(all), meta.at("pieces_fnv1a64").get<std::string>());
  EXPECT_EQ(special, meta.at("special_ids").get<std::vector<int>>());
  EXPECT_EQ(tok_->id_to_piece(0), "<unk>");
  EXPECT_EQ(tok_->id_to_piece(1), "<s>");
  EXPECT_EQ(tok_->id_to_piece(2), "</s>");
  EXPECT_EQ(tok_->piece_to_id("<unk>"), 0);
  EXPECT_EQ(tok_->piece_to_id("no such piece, surely"), -1);
}

TEST_P(SentencePieceParity, SpecialIdsInDecode) {
  std::vector<int> ids = tok_->encode("Hello world", true);
  ids.push_back(tok_->eos_id());
  EXPECT_EQ(tok_->decode(ids, true), "Hello world");
  // Rendered specials count as visible text, so the following piece keeps its space.
  EXPECT_EQ(tok_->decode(ids, false), "<s> Hello world</s>");
  std::vector<int> split = tok_->encode("Hello", false);
  split.push_back(tok_->eos_id());
  for (const int id : tok_->encode("world", false)) split.push_back(id);
  EXPECT_EQ(tok_->decode(split, true), "Hello world");
  EXPECT_EQ(tok_->decode(split, false), "Hello</s> world");
  EXPECT_EQ(tok_->decode({0}, false), "<unk>");
  EXPECT_EQ(tok_->decode({0}, true), "");
  EXPECT_EQ(tok_->decode({}, false), "");
  EXPECT_FALSE(tok_->is_special(3));  // <0x00>, a byte-fallback piece
  EXPECT_FALSE(tok_->is_special(-1));
  EXPECT_FALSE(tok_->is_special(tok_->vocab_size()));
}

TEST_P(SentencePieceParity, OutOfRangeIdsAreErrors) {
  const int n = tok_->vocab_size();
  EXPECT_TRUE(throws_error([&] { tok_->id_to_piece(n); }, "outside the vocabulary"));
  EXPECT_TRUE(throws_error([&] { tok_->id_to_piece(-1); }, "outside the vocabulary"));
  EXPECT_TRUE(throws_error([&] { tok_->decode({1, n}, true); }, std::to_string(n)));
}

// Two instantiations, two CTest entries: where ../shared is absent Llama2 is reported skipped and
// Demo still as passed.
INSTANTIATE_TEST_SUITE_P(Demo, SentencePieceParity, ::testing::Values(ModelCase{"demo", &kDemoModel, 4000}),
                         [](const auto& info) { return std::string(info.param.name); });
INSTANTIATE_TEST_SUITE_P(Llama2, SentencePieceParity, ::testing::Values(ModelCase{"llama2", &kLlama2Model, 32000}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------------------------
// Model folders: configs beside tokenizer.model, and what goes wrong.

class SentencePieceFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kDemoModel)) << "the demo tokenizer ships in data/tokenizer/";
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("percetrain_sp_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  void copy_model() const { fs::copy_file(kDemoModel, dir_ / "tokenizer.model"); }
  std::string dir() const { return dir_.string(); }

  fs::path dir_;
};

TEST_F(SentencePieceFolder, FolderWithDemoConfigAddsBosOnly) {
  copy_model();
  fs::copy_file(kSourceDir + "/data/tokenizer/tokenizer_config.json",
                dir_ / "tokenizer_config.json");
  const auto tok = load_tokenizer(dir());
  const auto body = tok->encode("Great blender.", false);
  ASSERT_FALSE(body.empty());
  std::vector<int> expected{1};
  expected.insert(expected.end(), body.begin(), body.end());
  EXPECT_EQ(tok->encode("Great blender.", true), expected);
}

TEST_F(SentencePieceFolder, ConfigTurnsBosOffAndEosOn) {
  copy_model();
  write("tokenizer_config.json", R"({"add_bos_token": false, "add_eos_token": true})");
  const auto tok = load_tokenizer(dir());
  EXPECT_FALSE(tok->adds_bos());
  EXPECT_TRUE(tok->adds_eos());
  const auto body = tok->encode("Hi there", false);
  std::vector<int> expected = body;
  expected.push_back(2);
  EXPECT_EQ(tok->encode("Hi there", true), expected);
}

// The three files as transformers writes them for Llama 2 (tokens as strings and as objects, a
// model_max_length beyond int64, added_tokens_decoder, a generation_config with a pad id).
TEST_F(SentencePieceFolder, HuggingFaceLlamaConfigs) {
  copy_model();
  write("tokenizer_config.json", R"({
    "add_bos_token": true, "add_eos_token": false,
    "added_tokens_decoder": {"0": {"content": "<unk>", "lstrip": false, "normalized": false,
                                   "rstrip": false, "single_word": false, "special": true}},
    "bos_token": "<s>", "clean_up_tokenization_spaces": false, "eos_token": "</s>",
    "legacy": false, "model_max_length": 1000000000000000019884624838656, "pad_token": null,
    "padding_side": "right", "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer",
    "unk_token": "<unk>", "use_default_system_prompt": false})");
  write("special_tokens_map.json", R"({
    "bos_token": {"content": "<s>", "lstrip": false, "normalized": false, "rstrip": false},
    "eos_token": {"content": "</s>", "lstrip": false, "normalized": false, "rstrip": false},
    "pad_token": "<unk>",
    "unk_token": {"content": "<unk>", "lstrip": false, "normalized": false, "rstrip": false}})");
  write("generation_config.json", R"({"bos_token_id": 1, "do_sample": true, "eos_token_id": 2,
    "max_length": 4096, "pad_token_id": 0, "temperature": 0.6, "top_p": 0.9})");
  const auto tok = load_tokenizer(dir());
  EXPECT_TRUE(tok->adds_bos());
  EXPECT_FALSE(tok->adds_eos());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  // special_tokens_map.json's "<unk>"; generation_config.json's pad_token_id is not read.
  EXPECT_EQ(tok->pad_id(), 0);
}

TEST_F(SentencePieceFolder, ConfigsOverrideTheModelsIds) {
  copy_model();
  write("tokenizer_config.json", R"({"eos_token": {"content": "<s>"}, "bos_token": null})");
  auto tok = load_tokenizer(dir());
  EXPECT_EQ(tok->bos_id(), -1);
  EXPECT_EQ(tok->eos_id(), 1);
  EXPECT_EQ(tok->encode("Hi", true), tok->encode("Hi", false));  // no BOS to add

  write("generation_config.json", R"({"eos_token_id": [2, 1]})");
  EXPECT_EQ(load_tokenizer(dir())->eos_id(), 2);  // generation_config.json wins; first of a list
  write("generation_config.json", R"({"eos_token_id": 4000})");
  EXPECT_TRUE(throws_error([&] { load_tokenizer(dir()); }, "eos_token_id"));
}

TEST_F(SentencePieceFolder, MalformedTokenizerConfigNamesTheFile) {
  copy_model();
  write("tokenizer_config.json", R"({"add_bos_token": tru)");
  try {
    load_tokenizer(dir());
    FAIL() << "expected a percetrain::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), (dir_ / "tokenizer_config.json").string());
    EXPECT_NE(std::string(e.what()).find("malformed JSON"), std::string::npos) << e.what();
  }
  write("tokenizer_config.json", R"([1, 2])");
  EXPECT_TRUE(throws_error([&] { load_tokenizer(dir()); }, "JSON object"));
}

TEST_F(SentencePieceFolder, WrongTypesAndUnknownTokensNameTheKey) {
  copy_model();
  write("tokenizer_config.json", R"({"add_bos_token": "yes"})");
  EXPECT_TRUE(throws_error([&] { load_tokenizer(dir()); }, "add_bos_token"));
  write("tokenizer_config.json", R"({"bos_token": "<|begin_of_text|>"})");
  EXPECT_TRUE(throws_error([&] { load_tokenizer(dir()); }, "bos_token"));
  write("tokenizer_config.json", R"({"eos_token": 7})");
  EXPECT_TRUE(throws_error([&] { load_tokenizer(dir()); }, "eos_token"));
  write("tokenizer_config.json", "{}");
  write("generation_config.json", R"({"eos_token_id": "2"})");
  EXPECT_TRUE(throws_error([&] { load_tokenizer(dir()); }, "eos_token_id"));
}

TEST_F(SentencePieceFolder, MissingOrCorruptModelNamesTheFile) {
  const std::string missing = (dir_ / "tokenizer.model").string();
  try {
    load_sentencepiece_tokenizer(missing);
    FAIL() << "expected a percetrain::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), missing);
  }
  EXPECT_TRUE(throws_error([&] { load_tokenizer(dir()); }, "no tokenizer.model"));
  EXPECT_TRUE(throws_error([&] { load_tokenizer(dir() + "/nowhere"); }, "nowhere"));

  write("tokenizer.model", "this is not a protobuf, just some text\n");
  try {
    load_tokenizer(dir());
    FAIL() << "expected a percetrain::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), missing);
    EXPECT_NE(std::string(e.what()).find("cannot load SentencePiece model"), std::string::npos);
  }
}

TEST_F(SentencePieceFolder, TokenizerJsonWinsUnlessItsComponentsAreUnsupported) {
  write("tokenizer.json", "{}");
  EXPECT_TRUE(throws_error([&] { load_tokenizer(dir()); }, "model: missing"));
  copy_model();  // a broken tokenizer.json is an error even with a tokenizer.model beside it
  EXPECT_TRUE(throws_error([&] { load_tokenizer(dir()); }, "model: missing"));
  // Llama 2's tokenizer.json (Metaspace, no byte-level alphabet): SentencePiece reads the folder.
  write("tokenizer.json",
        R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
            "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581"},
            "decoder": {"type": "Metaspace"}})");
  EXPECT_EQ(load_tokenizer(dir())->vocab_size(), 4000);
  EXPECT_TRUE(throws_error([&] { load_tokenizer((dir_ / "tokenizer.json").string()); }, "Metaspace"));
}

TEST_F(SentencePieceFolder, ModelFileDirectlyAndFileNames) {
  copy_model();
  EXPECT_EQ(load_tokenizer((dir_ / "tokenizer.model").string())->vocab_size(), 4000);
  write("notes.txt", "hello");
  EXPECT_TRUE(throws_error([&] { load_tokenizer((dir_ / "notes.txt").string()); },
                           "not a known tokenizer"));
  const auto& names = tokenizer_file_names();
  for (const char* f : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                        "special_tokens_map.json", "generation_config.json", "added_tokens.json"})
    EXPECT_NE(std::find(names.begin(), names.end(), f), names.end()) << f;
}

}  // namespace
}  // namespace percetrain
