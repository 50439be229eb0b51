// tokenizer.json: id-for-id parity with Hugging Face tokenizers on real Qwen3 and Llama 3 files
// (goldens from scripts/make_hf_tokenizer_goldens.py; tests/reference/test_tokenizers.py asks the
// library itself), chat formats against the models' own templates, component errors, and the CLI.
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <tuple>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "percetrain/tokenizer/chat_format.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace percetrain {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing_util::golden_dir;
using testing_util::ScratchDir;
using testing_util::source_dir;

const fs::path kFixtures = testing_util::shared_fixtures_dir();
const fs::path kQwen3 = kFixtures / "qwen3-tokenizer";
const fs::path kLlama3 = kFixtures / "llama3-tokenizer";

// Llama 3 as Meta's tokenizer.json has it today: the fixture (an older copy, which adds no BOS)
// with the TemplateProcessing post-processor that adds <|begin_of_text|>. Written once per process.
fs::path llama3_bos_dir() {
  static const ScratchDir dir("percetrain-llama3-bos");
  static const bool written = [] {
    auto j = nlohmann::ordered_json::parse(std::ifstream(kLlama3 / "tokenizer.json"));
    j["post_processor"] =
        nlohmann::ordered_json::parse(std::ifstream(golden_dir() / "tokenizer" / "llama3_bos_post_processor.json"));
    std::ofstream(dir / "tokenizer.json") << j.dump();
    fs::copy_file(kLlama3 / "tokenizer_config.json", dir / "tokenizer_config.json");
    return true;
  }();
  (void)written;
  return dir.path();
}

using testing_util::throws_error;

// ---------------------------------------------------------------------------------------------
// Real tokenizer files, from the shared fixtures outside the repository (../shared/fixtures).

// Loaded on first use and kept for the process: ctest runs each test in its own process, so each
// test loads only the tokenizers it uses (a Qwen3 tokenizer.json takes about a second).
class RealTokenizers : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kQwen3 / "tokenizer.json") || !fs::exists(kLlama3 / "tokenizer.json"))
      GTEST_SKIP() << "the real Qwen3 and Llama 3 tokenizer files are absent from " << kFixtures
                   << " (the shared fixtures live outside the repository, in ../shared/fixtures)";
  }
  static const Tokenizer& get(const fs::path& dir) {
    static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
    auto& t = loaded[dir.string()];
    if (!t) t = load_tokenizer(dir.string());
    return *t;
  }
  static const Tokenizer& qwen3() { return get(kQwen3); }
  static const Tokenizer& llama3() { return get(kLlama3); }
  static const Tokenizer& llama3_bos() { return get(llama3_bos_dir()); }
};

std::vector<json> read_jsonl(const fs::path& file) {
  std::ifstream in(file);
  EXPECT_TRUE(in) << "cannot open " << file;
  std::vector<json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

TEST_F(RealTokenizers, GoldenCorpusMatchesReferenceIdForId) {
  const auto corpus = read_jsonl(golden_dir() / "tokenizer" / "hf_corpus.jsonl");
  const auto golden = read_jsonl(golden_dir() / "tokenizer" / "hf_ids.jsonl");
  ASSERT_GE(corpus.size(), 1000u);
  ASSERT_EQ(corpus.size(), golden.size());
  struct Case {
    const char* name;
    const Tokenizer* tok;
    const char* plain_key;  // llama3_bos shares llama3's ids without special tokens
  };
  const Case cases[] = {{"qwen3", &qwen3(), "qwen3"}, {"llama3", &llama3(), "llama3"}, {"llama3_bos", &llama3_bos(), "llama3"}};
  size_t compared = 0, mismatched = 0, roundtrip_failures = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string text = corpus[i]["text"];
    const json& row = golden[i];
    for (const Case& c : cases) {
      const std::vector<int> plain = row[c.plain_key];
      const std::string special_key = std::string(c.name) + "_special";
      const std::vector<int> special = row.contains(special_key) ? row[special_key].get<std::vector<int>>() : plain;
      const auto got_plain = c.tok->encode(text, false);
      const auto got_special = c.tok->encode(text, true);
      compared += 2;
      for (const auto& [got, want, mode] : {std::make_tuple(&got_plain, &plain, "without"),
                                           std::make_tuple(&got_special, &special, "with")}) {
        if (*got == *want) continue;
        if (++mismatched <= 5)
          ADD_FAILURE() << c.name << " " << mode << " special tokens, line " << i + 1 << " " << json(text).dump()
                        << "\n  got  " << json(*got).dump() << "\n  want " << json(*want).dump();
      }
      // Qwen3 normalises to NFC, so decomposed input comes back composed, as with the reference.
      const std::string expect = std::string(c.name) == "qwen3" && row.contains("nfc") ? row["nfc"].get<std::string>() : text;
      if (c.tok->decode(got_plain, false) != expect && ++roundtrip_failures <= 5)
        ADD_FAILURE() << c.name << ": decode(encode(s)) != s for line " << i + 1 << " " << json(text).dump();
    }
  }
  EXPECT_EQ(mismatched, 0u) << "of " << compared << " encodings";
  EXPECT_EQ(roundtrip_failures, 0u);
  EXPECT_EQ(compared, corpus.size() * 3 * 2);
}

TEST_F(RealTokenizers, Qwen3SpecialTokensIdsAndDecoding) {
  const Tokenizer& q = qwen3();
  const int im_start = q.piece_to_id("<|im_start|>"), im_end = q.piece_to_id("<|im_end|>");
  EXPECT_EQ(im_start, 151644);
  EXPECT_EQ(im_end, 151645);
  // Special tokens inside text are matched before pre-tokenization.
  const auto ids = q.encode("<|im_start|>user\nHi<|im_end|>", false);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), im_start);
  EXPECT_EQ(ids.back(), im_end);
  EXPECT_TRUE(q.is_special(im_end));
  EXPECT_EQ(q.decode(ids, false), "<|im_start|>user\nHi<|im_end|>");
  EXPECT_EQ(q.decode(ids, true), "user\nHi");
  // <think> is an added token that is not special: matched in text, kept when skipping specials.
  const int think = q.piece_to_id("<think>");
  EXPECT_EQ(q.encode("<think>", false), std::vector<int>{think});
  EXPECT_FALSE(q.is_special(think));
  EXPECT_EQ(q.decode({think, im_end}, true), "<think>");
  EXPECT_NE(q.encode("<|im_end |>", false).size(), 1u);  // a near miss is ordinary text
  // Pieces are the byte-level spellings of tokenizer.json.
  EXPECT_EQ(q.id_to_piece(q.encode(" hello", false).at(0)), "\xC4\xA0hello");  // "Ġhello"
  EXPECT_EQ(q.piece_to_id("no such piece at all"), -1);

  // No BOS; EOS <|im_end|> and PAD <|endoftext|> from tokenizer_config.json.
  EXPECT_EQ(q.bos_id(), -1);
  EXPECT_EQ(q.eos_id(), 151645);
  EXPECT_EQ(q.pad_id(), 151643);
  EXPECT_FALSE(q.adds_bos());
  EXPECT_EQ(q.vocab_size(), 151669);
  EXPECT_TRUE(throws_error([&] { q.decode({151669}, false); }, "outside the vocabulary"));
  EXPECT_TRUE(throws_error([&] { q.encode(std::string("bad \xC3\x28 utf8"), false); }, "not valid UTF-8"));

  // A partial character decodes to U+FFFD, as from_utf8_lossy; the whole one round-trips.
  const auto emoji = q.encode("\xF0\x9F\x98\x80", false);
  if (emoji.size() >= 2) EXPECT_NE(q.decode({emoji.front()}, false).find("\xEF\xBF\xBD"), std::string::npos);
  EXPECT_EQ(q.decode(emoji, false), "\xF0\x9F\x98\x80");

  // Long pre-tokens take the heap-based merge path and the regex's backtracking over long runs.
  for (const std::string& text : {std::string(100000, ' ') + "x", std::string(50000, '7'),
                                  std::string(30000, 'a') + "\n\n" + std::string(20000, '\t')})
    EXPECT_EQ(q.decode(q.encode(text, false), false), text);
}

TEST_F(RealTokenizers, Llama3BosAndChatFormatsTokenizeLikeTheModelsOwnTemplates) {
  // Meta's current post-processor adds <|begin_of_text|> (the fixture's adds nothing: the golden
  // corpus test covers it); ids also from tokenizer_config.json.
  const Tokenizer& l = llama3_bos();
  EXPECT_TRUE(l.adds_bos());
  EXPECT_FALSE(l.adds_eos());
  EXPECT_EQ(l.bos_id(), 128000);
  EXPECT_EQ(l.eos_id(), 128001);
  EXPECT_EQ(l.encode("", true), std::vector<int>{128000});
  EXPECT_EQ(l.vocab_size(), 128256);

  const Tokenizer& q = qwen3();
  const json chat = json::parse(std::ifstream(golden_dir() / "tokenizer" / "hf_chat.json"));
  const std::string system = chat["messages"][0]["content"], user = chat["messages"][1]["content"];
  // Qwen3's template without enable_thinking is plain chatml; with enable_thinking=false (and
  // around every non-reasoning answer it renders) it adds the empty think block: format qwen3.
  const std::string chatml = format_chat_prompt(ChatFormat::kChatml, system, user);
  EXPECT_EQ(chatml, chat["qwen3"]["text"].get<std::string>());
  EXPECT_EQ(q.encode(chatml, true), chat["qwen3"]["ids"].get<std::vector<int>>());
  const std::string qwen3_prompt = format_chat_prompt(ChatFormat::kQwen3, system, user);
  EXPECT_EQ(qwen3_prompt, chat["qwen3_no_thinking"]["text"].get<std::string>());
  EXPECT_EQ(q.encode(qwen3_prompt, true), chat["qwen3_no_thinking"]["ids"].get<std::vector<int>>());
  // Llama 3's template writes bos_token as text; the prompt leaves BOS to the tokenizer.
  const std::string llama3_prompt = format_chat_prompt(ChatFormat::kLlama3, system, user);
  EXPECT_EQ("<|begin_of_text|>" + llama3_prompt, chat["llama3"]["text"].get<std::string>());
  EXPECT_EQ(l.encode(llama3_prompt, true), chat["llama3"]["ids"].get<std::vector<int>>());
  EXPECT_EQ(q.encode(chat_turn_end(ChatFormat::kQwen3), false), std::vector<int>{151645});
  EXPECT_EQ(l.encode(chat_turn_end(ChatFormat::kLlama3), false), std::vector<int>{128009});
}

// ---------------------------------------------------------------------------------------------
// A tiny byte-level BPE written here, for behaviour and error tests that need no download.

std::string byte_char(int b) {  // GPT-2's byte -> printable character table, spelled out
  const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  int cp = b;
  if (!printable) {
    cp = 256;
    for (int k = 0; k < b; ++k)
      if (!((k >= 0x21 && k <= 0x7E) || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF))) ++cp;
  }
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else s += static_cast<char>(0xC0 | (cp >> 6)), s += static_cast<char>(0x80 | (cp & 0x3F));
  return s;
}

json tiny_tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  const std::string G = byte_char(' ');  // "Ġ"
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  vocab["hello"] = 259;
  vocab[G + "w"] = 260;
  return json{
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       {{{"id", 300}, {"content", "<|end|>"}, {"special", true}, {"lstrip", false}, {"rstrip", false},
         {"single_word", false}, {"normalized", false}},
        {{"id", 301}, {"content", "<x>"}, {"special", false}, {"lstrip", true}, {"rstrip", true},
         {"single_word", false}, {"normalized", false}},
        {{"id", 302}, {"content", "<|start|>"}, {"special", true}, {"lstrip", false}, {"rstrip", false},
         {"single_word", false}, {"normalized", false}}}},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", "\\p{N}"}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}}}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<|start|>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair", nullptr},
        {"special_tokens", {{"<|start|>", {{"id", "<|start|>"}, {"ids", {302}}, {"tokens", {"<|start|>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
        {"vocab", vocab},
        {"merges", {"h e", "l l", "he ll", json::array({"hell", "o"}), G + " w"}}}},
  };
}

class TinyTokenizer : public ::testing::Test {
 protected:
  std::string write(const json& j, const std::string& name = "tokenizer.json") {
    const auto path = dir_ / name;
    std::ofstream(path) << j.dump();
    return path.string();
  }
  ScratchDir dir_{"percetrain-hf-tok"};
};

TEST_F(TinyTokenizer, MergesAddedTokensAndTemplate) {
  const auto tok = load_tokenizer(write(tiny_tokenizer()));
  EXPECT_EQ(tok->vocab_size(), 303);
  EXPECT_EQ(tok->encode("hello world", false),
            (std::vector<int>{259, 260, 'o', 'r', 'l', 'd'}));
  EXPECT_EQ(tok->encode("hello", true), (std::vector<int>{302, 259}));
  EXPECT_TRUE(tok->adds_bos());
  EXPECT_EQ(tok->bos_id(), 302);
  // Special tokens split the text before pre-tokenization; lstrip/rstrip eat neighbouring spaces.
  EXPECT_EQ(tok->encode("he<|end|>he", false), (std::vector<int>{256, 300, 256}));
  EXPECT_EQ(tok->encode("he  <x>  he", false), (std::vector<int>{256, 301, 256}));
  EXPECT_EQ(tok->decode({256, 300, 256}, true), "hehe");
  // Digits are isolated by the Split step before the byte-level regex sees them.
  EXPECT_EQ(tok->encode("12", false), (std::vector<int>{'1', '2'}));
  // NFC: "e" + combining acute becomes U+00E9 (bytes C3 A9 -> their byte-level ids).
  EXPECT_EQ(tok->encode("e\xCC\x81", false), (std::vector<int>{0xC3, 0xA9}));
  EXPECT_EQ(tok->decode(tok->encode("hello world", true), false), "<|start|>hello world");
}

TEST_F(TinyTokenizer, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  json j = tiny_tokenizer();
  j["model"]["vocab"]["hlo"] = 270;  // reachable only as a whole word, no merge builds it
  EXPECT_EQ(load_tokenizer(write(j))->encode("hlo", false), (std::vector<int>{'h', 'l', 'o'}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(load_tokenizer(write(j))->encode("hlo", false), std::vector<int>{270});
}

TEST_F(TinyTokenizer, UnsupportedComponentsAreNamed) {
  const auto check = [&](const std::function<void(json&)>& edit, const std::string& needle) {
    json j = tiny_tokenizer();
    edit(j);
    const std::string file = write(j);
    EXPECT_TRUE(throws_error([&] { load_tokenizer(file); }, needle)) << needle;
  };
  check([](json& j) { j["model"]["type"] = "WordPiece"; }, "unsupported model 'WordPiece'");
  check([](json& j) { j["model"]["type"] = "Unigram"; }, "model.type");
  check([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["type"] = "Whitespace"; },
        "pre_tokenizer.pretokenizers[0].type: unsupported pre-tokenizer 'Whitespace'");
  check([](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}}; }, "unsupported pre-tokenizer 'Metaspace'");
  check([](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }, "unsupported normalizer 'Lowercase'");
  check([](json& j) { j["post_processor"] = {{"type", "RobertaProcessing"}}; },
        "unsupported post-processor 'RobertaProcessing'");
  check([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "unsupported decoder 'WordPiece'");
  check([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways"; }, "split behavior");
  check([](json& j) { j["model"]["dropout"] = 0.1; }, "dropout");
  check([](json& j) { j["truncation"] = {{"max_length", 8}}; }, "truncation");
}

TEST_F(TinyTokenizer, MalformedFilesAreClearErrors) {
  std::ofstream(dir_ / "tokenizer.json") << "{\"model\": {\"type\": \"BPE\", \"vocab\": {";
  EXPECT_TRUE(throws_error([&] { load_tokenizer((dir_ / "tokenizer.json").string()); }, "malformed JSON"));
  EXPECT_TRUE(throws_error([&] { load_tokenizer(dir_.path().string()); }, "tokenizer.json: malformed JSON"));
  const auto check = [&](const std::function<void(json&)>& edit, const std::string& needle) {
    json j = tiny_tokenizer();
    edit(j);
    const std::string file = write(j);
    EXPECT_TRUE(throws_error([&] { load_tokenizer(file); }, needle)) << needle;
  };
  check([](json& j) { j.erase("model"); }, "model: missing");
  check([](json& j) { j["model"]["merges"].push_back("zz qq"); }, "not in the vocabulary");
  check([](json& j) { j["model"]["merges"].push_back("a b c"); }, "merges[5]");
  check([](json& j) { j["model"]["vocab"]["x"] = "seven"; }, "not a non-negative integer");
  // Found by fuzzing (fuzz/tokenizer_json.cpp): ids this large sized the id tables (42 GB).
  check([](json& j) { j["model"]["vocab"]["x"] = 4294967296152; },
        "model.vocab: id of 'x' is not a non-negative integer below 4194304");
  check([](json& j) { j["added_tokens"][0]["id"] = 2147483647; },
        "added_tokens[0].id: expected a non-negative integer below 4194304");
  check([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "(unclosed"}}; },
        "cannot compile regex");
  check([](json& j) { j["added_tokens"][0].erase("content"); }, "added_tokens[0].content");
  check([](json& j) { j["post_processor"]["single"][0]["SpecialToken"]["id"] = "<|nope|>"; }, "<|nope|>");
  json cfg = {{"eos_token", "<|absent|>"}};
  std::ofstream(dir_ / "tokenizer_config.json") << cfg.dump();
  write(tiny_tokenizer());
  EXPECT_TRUE(throws_error([&] { load_tokenizer(dir_.path().string()); }, "tokenizer_config.json: eos_token"));
}

// ---------------------------------------------------------------------------------------------
// percetrain tokenize, end to end through the built binary.

std::string run(const std::string& command, int* status) {
  const auto r = testing_util::run_command(command);
  *status = r.status;
  return r.output;
}

TEST_F(TinyTokenizer, TokenizeCommandEndToEnd) {
  const std::string file = write(tiny_tokenizer());
  const std::string bin = PERCETRAIN_BINARY;
  int status = -1;
  // --json: one JSON line of ids per text, the machine-readable form the parity tests read.
  std::string out = run(bin + " tokenize --json --tokenizer " + file + " --text 'hello world'", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, "{\"ids\":[302,259,260,111,114,108,100]}\n");
  std::ofstream(dir_ / "in.jsonl") << "{\"text\": \"hello\"}\n\n{\"text\": \"he<|end|>\"}\n";
  out = run(bin + " tokenize --json --tokenizer " + file + " --no-special --input " + (dir_ / "in.jsonl").string(),
            &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, "{\"ids\":[259]}\n{\"ids\":[256,300]}\n");
  // By default a table: each id next to its piece (byte-level BPE's "Ġ" is the leading space).
  out = run(bin + " tokenize --tokenizer " + file + " --text 'hello world'", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out,
            "7 tokens\n"
            "  302  <|start|>\n  259  hello\n  260  \xC4\xA0w\n  111  o\n  114  r\n  108  l\n  100  d\n");
  out = run(bin + " tokenize --tokenizer " + file + " --no-special --input " + (dir_ / "in.jsonl").string(), &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, "text 1 of 2: 1 token\n  259  hello\n\ntext 2 of 2: 2 tokens\n  256  he\n  300  <|end|>\n");
  std::ofstream(dir_ / "bad.jsonl") << "{\"text\": \"ok\"}\n{\"txt\": 1}\n";
  out = run(bin + " tokenize --tokenizer " + file + " --input " + (dir_ / "bad.jsonl").string(), &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("bad.jsonl:2"), std::string::npos) << out;
  out = run(bin + " tokenize --tokenizer " + file, &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("--text or --input"), std::string::npos) << out;
}

TEST(ChatFormat, NamesAndTemplates) {
  EXPECT_EQ(parse_chat_format("llama3", "cfg"), ChatFormat::kLlama3);
  EXPECT_TRUE(throws_error([] { parse_chat_format("vicuna", "cfg: chat_format"); }, "unknown chat format 'vicuna'"));
  EXPECT_EQ(format_chat_prompt(ChatFormat::kNone, "", "hi"), "hi");
  EXPECT_EQ(format_chat_prompt(ChatFormat::kChatml, "", "hi"), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  // As the template: strip() applies to the system block and message together.
  EXPECT_EQ(format_chat_prompt(ChatFormat::kLlama2, "Be brief.", " hi "), "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n hi [/INST]");
  EXPECT_EQ(format_chat_prompt(ChatFormat::kLlama2, "", "hi"), "[INST] hi [/INST]");
  EXPECT_EQ(chat_turn_end(ChatFormat::kLlama2), " </s>");
  EXPECT_EQ(chat_turn_end(ChatFormat::kChatml), "<|im_end|>");
  // Jinja's trim is Python's str.strip(): no-break and ideographic spaces go too.
  EXPECT_EQ(format_chat_prompt(ChatFormat::kLlama2, "", "\xC2\xA0hi\xE2\x80\xAF \xE3\x80\x80"), "[INST] hi [/INST]");
  EXPECT_EQ(format_chat_prompt(ChatFormat::kLlama2, "", "\xE3\x80\x80"), "[INST]  [/INST]");
}

}  // namespace
}  // namespace percetrain
