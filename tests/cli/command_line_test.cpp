// Command-line mistakes through the binary: a bad or conflicting option value is one line on
// stderr and exit status 2, before any config is printed, any model loaded or any file written;
// and a user's name with a control character in it keeps an error on one line (issue 26).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "percetrain/util/error.hpp"
#include "percetrain/util/text.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using percetrain::testing_util::read_file;
using percetrain::testing_util::run_percetrain;
using percetrain::testing_util::ScratchDir;
using percetrain::testing_util::source_dir;
using percetrain::testing_util::write_file;

namespace {

struct Outcome {
  int status = -1;
  std::string out, err;
};

// Runs percetrain with `args` from inside `dir`, stdout and stderr apart.
Outcome run_in(const fs::path& dir, const std::string& args) {
  const fs::path err = dir / ".stderr";
  Outcome o;
  const auto r = run_percetrain(args + " 2>" + err.string(), /*with_stderr=*/false);
  o.status = r.status;
  o.out = r.output;
  o.err = read_file(err);
  fs::remove(err);
  return o;
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

std::string demo_config() { return (source_dir() / "configs" / "demo.json").string(); }

// A job on the demo config whose model and outputs all live in `dir`.
std::string job(const std::string& command, const fs::path& dir) {
  return command + " --config " + demo_config() + " --set model.path=" + (dir / "model").string() +
         " --set output.dir=" + (dir / "run").string();
}

// Expects exit status 2, exactly one line on stderr containing `needle`, nothing on stdout
// (no config dump) and nothing written into `dir`.
void expect_usage_error(const fs::path& dir, const std::string& args, const std::string& needle) {
  SCOPED_TRACE(args);
  const Outcome o = run_in(dir, args);
  EXPECT_EQ(o.status, 2) << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  EXPECT_EQ(o.err.rfind("percetrain: error: ", 0), 0u) << o.err;
  EXPECT_NE(o.err.find(needle), std::string::npos) << o.err;
  EXPECT_EQ(o.out, "");
  EXPECT_TRUE(entries(dir).empty()) << "wrote " << entries(dir).front();
}

TEST(CommandLine, NegativeAndZeroCountsAreRefusedByTheParser) {
  const ScratchDir dir("percetrain-cli");
  const fs::path d = dir.path();
  const std::string whole = "must be a whole number >= ";
  expect_usage_error(d, job("train", d) + " --stop-after -1", "--stop-after: " + whole + "1, not '-1'");
  expect_usage_error(d, job("train", d) + " --stop-after 0", "--stop-after: " + whole + "1");
  expect_usage_error(d, job("score", d) + " --out " + (d / "s.jsonl").string() + " --batch-size -3", "--batch-size");
  expect_usage_error(d, job("score", d) + " --out " + (d / "s.jsonl").string() + " --limit -3", "--limit");
  expect_usage_error(d, job("score", d) + " --out " + (d / "s.jsonl").string() + " --limit 0", "--limit");
}

TEST(CommandLine, NegativeAndZeroCountsOfScoringAreRefusedByTheParser) {
  const ScratchDir dir("percetrain-cli");
  const fs::path d = dir.path();
  const std::string data = (source_dir() / "data" / "demo" / "test.jsonl").string();
  const std::string whole = "must be a whole number >= ";
  expect_usage_error(d, job("score", d) + " --out " + (d / "s.jsonl").string() + " --html-records -1",
                     "--html-records: " + whole + "0");
  expect_usage_error(d, job("score", d) + " --out " + (d / "s.jsonl").string() + " --limit 2x", "not '2x'");
  expect_usage_error(d, job("generate", d) + " --data " + data + " --out " + (d / "g.jsonl").string() + " --limit -1",
                     "--limit");
  expect_usage_error(d, job("inspect-data", d) + " --limit -1", "--limit");
}

TEST(CommandLine, NegativeAndZeroBenchSizesAreRefusedByTheParser) {
  const ScratchDir dir("percetrain-cli");
  const fs::path d = dir.path();
  expect_usage_error(d, job("bench", d) + " --steps 0", "--steps");
  expect_usage_error(d, job("bench", d) + " --warmup -1", "--warmup");
  expect_usage_error(d, job("bench", d) + " --rounds 0", "--rounds");
  expect_usage_error(d, job("bench", d) + " --with-length -5", "--with-length");
}

TEST(CommandLine, NegativeAndZeroSizesOfModelsAreRefusedByTheParser) {
  const ScratchDir dir("percetrain-cli");
  const fs::path d = dir.path();
  const std::string init = "init-model --arch llama --tokenizer " + (source_dir() / "data" / "tokenizer").string() +
                           " --out " + (d / "m").string();
  expect_usage_error(d, init + " --layers 0", "--layers");
  expect_usage_error(d, init + " --seed -1", "--seed");
  expect_usage_error(d, "generate --benchmark --model " + (d / "m").string() + " --new-tokens 1", "--new-tokens");
  expect_usage_error(d, "generate --benchmark --model " + (d / "m").string() + " --batch-size -1", "--batch-size");
}

TEST(CommandLine, ConflictingOptionsAreRefusedByTheParser) {
  const ScratchDir dir("percetrain-cli");
  const fs::path d = dir.path();
  const std::string data = (source_dir() / "data" / "demo" / "test.jsonl").string();
  expect_usage_error(d, job("train", d) + " --resume --overwrite", "--resume excludes --overwrite");
  expect_usage_error(d, job("score", d) + " --out " + (d / "s.jsonl").string() + " --adapter a --adapters b",
                     "--adapter excludes --adapters");
  expect_usage_error(d, job("generate", d) + " --data " + data + " --out " + (d / "g.jsonl").string() +
                            " --adapter a --adapters b",
                     "--adapter excludes --adapters");
  expect_usage_error(d, job("generate", d) + " --data " + data, "--out is required");
  expect_usage_error(d, job("generate", d) + " --data " + data + " --out " + (d / "g.jsonl").string() +
                            " --model " + (d / "m").string(),
                     "--model requires --benchmark");
}

TEST(CommandLine, MalformedValuesAreRefusedByTheParser) {
  const ScratchDir dir("percetrain-cli");
  const fs::path d = dir.path();
  expect_usage_error(d, "generate --benchmark", "--benchmark needs --model or --random-config");
  expect_usage_error(d, "generate --benchmark --model " + (d / "m").string() + " --device gpu",
                     "'gpu' is not a device");
  const std::string init = "init-model --arch llama --tokenizer " + (source_dir() / "data" / "tokenizer").string() +
                           " --out " + (d / "m").string();
  expect_usage_error(d, init + " --preset huge", "--preset");
  expect_usage_error(d, init + " --dtype float64", "'float64' is not a dtype");
  expect_usage_error(d, "logprobs --model " + (d / "m").string() + " --text hi --device gpu", "'gpu' is not a device");
  expect_usage_error(d, job("train", d) + " --set train.lr", "'train.lr' is not section.key=value");
  expect_usage_error(d, job("train", d) + " --set train.lrr=1", "did you mean 'train.lr'?");
}

TEST(CommandLine, MissingAlternativesAreRefusedByTheParser) {
  const ScratchDir dir("percetrain-cli");
  const fs::path d = dir.path();
  expect_usage_error(d, "tokenize --tokenizer " + (source_dir() / "data" / "tokenizer").string(),
                     "--text or --input is required");
  expect_usage_error(d, "logprobs --model " + (d / "m").string(), "--text or --ids is required");
  expect_usage_error(d, "eval --predictions " + (d / "p.jsonl").string(), "--references is required");
  expect_usage_error(d, "eval --predictions " + (d / "p.jsonl").string() + " --task LaMP_4",
                     "--task requires --write-lamp");
}

TEST(CommandLine, ZeroIsMeaningfulWhereHelpSaysSo) {
  const ScratchDir dir("percetrain-cli");
  const Outcome o = run_in(dir.path(), job("inspect-data", dir.path()) + " --limit 0");
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_NE(o.out.find("records"), std::string::npos) << o.out;
}

// A user id with a newline or a NUL (JSON-escaped in the .jsonl) is shown escaped: the error is
// one line and names the whole id.
TEST(CommandLine, ControlCharactersInAUserIdAreEscapedInTheError) {
  const ScratchDir dir("percetrain-cli");
  const std::string record =
      R"(", "input": "Generate a review. The summary of the review text is \"Good\".", "output": "Fine.", "profile": []})";
  for (const auto& [json_id, shown] : std::vector<std::pair<std::string, std::string>>{
           {R"(u\nx)", R"('u\nx')"}, {R"(u\u0000x)", R"('u\0x')"}}) {
    SCOPED_TRACE(shown);
    write_file(dir / "train.jsonl", R"({"id": "r1", "user": ")" + json_id + record + "\n");
    const Outcome o = run_in(dir.path(), job("train", dir.path()) + " --quiet --set lora.rank=2 --set lora.per_user=true --set train.save_every=0"
                                             " --set data.valid_file= --set data.train_file=" +
                                             (dir / "train.jsonl").string());
    EXPECT_EQ(o.status, 1) << o.err;
    ASSERT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
    EXPECT_NE(o.err.find("user id " + shown + " cannot name its adapter folder: it contains a control character"),
              std::string::npos)
        << o.err;
  }
}

TEST(ErrorLines, ControlCharactersInNamesAreEscaped) {
  using namespace std::string_literals;
  EXPECT_EQ(percetrain::quote_name("u\nx\0y\t\x1b\x7f\\z"s), R"('u\nx\0y\t\x1b\x7f\\z')");
  EXPECT_EQ(percetrain::quote_name("caf\xC3\xA9 \xC2\x85"), "'caf\xC3\xA9 \\u0085'");  // UTF-8 kept
  // Every error is one line whole, whatever a message quotes unescaped; backslashes stay as they are.
  const percetrain::Error e("data.jsonl: r\n1"s, "user \0x"s, "a\\b");
  EXPECT_EQ(std::string(e.what()), R"(data.jsonl: r\n1: user \0x (a\b))");
}

}  // namespace
