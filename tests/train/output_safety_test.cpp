// No output lands on an input, and no finished model or damaged adapter is used or replaced
// silently (issue 26, items 1, 2 and 7), through the binary: each refusal is one line, exits
// before any work, and leaves the input's bytes as they were.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "percetrain/util/checksum.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using percetrain::sha256_file;
using percetrain::testing_util::read_file;
using percetrain::testing_util::run_percetrain;
using percetrain::testing_util::ScratchDir;
using percetrain::testing_util::source_dir;
using percetrain::testing_util::write_file;

namespace {

// The lines percetrain printed that are errors; a refusal is exactly one.
std::vector<std::string> error_lines(const std::string& output) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < output.size()) {
    const size_t end = output.find('\n', start);
    const std::string line = output.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (line.find("error") != std::string::npos) lines.push_back(line);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return lines;
}

// SHA-256 of every file under `path` (or of the file), by relative name.
std::map<std::string, std::string> fingerprint(const fs::path& path) {
  std::map<std::string, std::string> out;
  if (fs::is_regular_file(path)) {
    out[""] = sha256_file(path.string());
    return out;
  }
  for (const auto& e : fs::recursive_directory_iterator(path))
    if (e.is_regular_file()) out[fs::relative(e.path(), path).string()] = sha256_file(e.path().string());
  return out;
}

// Runs `args`, expects status `rc`, one error line holding `expected`, and `input` unchanged.
void expect_refused(const std::string& args, int rc, const std::string& expected, const fs::path& input) {
  const auto before = fingerprint(input);
  const auto r = run_percetrain(args);
  EXPECT_EQ(r.status, rc) << args << "\n" << r.output;
  const auto errors = error_lines(r.output);
  ASSERT_EQ(errors.size(), 1u) << args << "\n" << r.output;
  EXPECT_NE(errors[0].find(expected), std::string::npos) << args << "\n" << r.output;
  EXPECT_EQ(fingerprint(input), before) << input << " changed: " << args;
}

// A tiny model, a copy of the demo config with absolute paths (so that writing over it cannot
// touch the repository's), and a copy of the test data, in `dir`.
struct Job {
  fs::path model, config, data;
  explicit Job(const fs::path& dir) : model(dir / "model"), config(dir / "job.json"), data(dir / "data.jsonl") {
    const auto r = run_percetrain("init-model --arch llama --tokenizer " + (source_dir() / "data" / "tokenizer").string() +
                                  " --out " + model.string());
    EXPECT_EQ(r.status, 0) << r.output;
    std::string text = read_file(source_dir() / "configs" / "demo.json");
    for (size_t at; (at = text.find("\"../")) != std::string::npos;) text.replace(at, 4, "\"" + source_dir().string() + "/");
    write_file(config, text);
    fs::copy_file(source_dir() / "data" / "demo" / "test.jsonl", data);
  }
  std::string score(const std::string& out, const std::string& extra = "") const {
    return "score --config " + config.string() + " --set model.path=" + model.string() + " --data " + data.string() +
           " --limit 2 --quiet --out " + out + " " + extra;
  }
};

const char* kInputs = "choose an output path outside the job's inputs";

TEST(OutputSafety, ScoreRefusesAnOutputOntoItsInputs) {
  ScratchDir dir("out-score");
  const Job job(dir.path());
  expect_refused(job.score((job.model / "model.safetensors").string()), 2, "is inside model.path", job.model);
  expect_refused(job.score(job.data.string()), 2, "is --data, which this job reads", job.data);
  expect_refused(job.score(job.config.string()), 2, "is the config file", job.config);
}

TEST(OutputSafety, ScoreResolvesLinksAndDotsAndChecksItsSideFiles) {
  ScratchDir dir("out-score-paths");
  const Job job(dir.path());
  // Through ".." and a symlink, and through the side files OUT.tmp and OUT.summary.json.
  expect_refused(job.score((dir / "model" / ".." / "data.jsonl").string()), 2, kInputs, job.data);
  fs::create_symlink(job.data, dir / "link.jsonl");
  expect_refused(job.score((dir / "link.jsonl").string()), 2, "which resolves to " + job.data.string(), job.data);
  fs::create_symlink(job.model, dir / "model-link");
  expect_refused(job.score((dir / "model-link" / "config.json").string()), 2, "is inside model.path", job.model);
  auto tmp_job = job;
  tmp_job.data = dir / "e.jsonl.tmp";
  fs::copy_file(job.data, tmp_job.data);
  expect_refused(tmp_job.score((dir / "e.jsonl").string()), 2, "OUT.tmp (from --out)", tmp_job.data);
  auto summary_job = job;
  summary_job.data = dir / "d.summary.json";
  fs::copy_file(job.data, summary_job.data);
  expect_refused(summary_job.score((dir / "d.jsonl").string()), 2, "OUT.summary.json (from --out)", summary_job.data);
  expect_refused(summary_job.score((dir / "s.jsonl").string(), "--html " + summary_job.data.string()), 2, "--html",
                 summary_job.data);
  expect_refused(summary_job.score((dir / "s.jsonl").string(), "--weights-out " + (dir / "s.jsonl").string()), 2,
                 "is also where --out is written", summary_job.data);
  EXPECT_FALSE(fs::exists(dir / "s.jsonl"));
  // A path of its own is scored.
  const auto r = run_percetrain(summary_job.score((dir / "s.jsonl").string()));
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST(OutputSafety, GenerateAndEvalRefuseAnOutputOntoTheirInputs) {
  ScratchDir dir("out-other");
  const Job job(dir.path());
  expect_refused("generate --config " + job.config.string() + " --set model.path=" + job.model.string() + " --data " +
                     job.data.string() + " --limit 1 --out " + job.data.string(),
                 2, "is --data", job.data);
  write_file(dir / "preds.jsonl", "{\"id\": \"a\", \"prediction\": \"x\"}\n");
  write_file(dir / "refs.jsonl", "{\"id\": \"a\", \"output\": \"x\"}\n");
  expect_refused("eval --predictions " + (dir / "preds.jsonl").string() + " --references " +
                     (dir / "refs.jsonl").string() + " --out " + (dir / "refs.jsonl").string(),
                 2, "is --references", dir / "refs.jsonl");
  expect_refused("eval --predictions " + (dir / "preds.jsonl").string() + " --task LaMP_4 --write-lamp " +
                     (dir / "preds.jsonl").string(),
                 2, "is --predictions", dir / "preds.jsonl");
}

TEST(OutputSafety, ReportRefusesAnOutputOntoTheRunsFiles) {
  ScratchDir dir("out-report");
  fs::create_directories(dir / "run" / "final");
  write_file(dir / "run" / "metrics.jsonl", "{\"step\": 1, \"loss\": 2.0}\n");
  write_file(dir / "run" / "final" / "config.json", "{}\n");
  expect_refused("report " + (dir / "run").string() + " --out " + (dir / "run" / "metrics.jsonl").string(), 2,
                 "is the run's metrics.jsonl", dir / "run");
  expect_refused("report " + (dir / "run").string() + " --out " + (dir / "run" / "final" / "x.html").string(), 2,
                 "is inside the run's folder", dir / "run");
  const auto r = run_percetrain("report " + (dir / "run").string());  // RUN/report.html is its own
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST(OutputSafety, TrainRefusesAnOutputDirOnItsInputs) {
  ScratchDir dir("out-train");
  const Job job(dir.path());
  const std::string train = "train --config " + job.config.string() + " --quiet --set train.max_steps=1 ";
  expect_refused(train + "--set model.path=" + job.model.string() + " --set output.dir=" + job.model.string(), 1,
                 "output.dir", job.model);
  expect_refused(train + "--set model.path=" + job.model.string() + " --set output.dir=" + (job.model / "run").string(),
                 1, "is inside model.path", job.model);
  // A finished run's final/ as the model of a new run in the same output.dir: publishing final/
  // (or --overwrite) would replace the model being read.
  fs::create_directories(dir / "run");
  fs::rename(job.model, dir / "run" / "final");
  expect_refused(train + "--set model.path=" + (dir / "run" / "final").string() + " --set output.dir=" +
                     (dir / "run").string() + " --overwrite",
                 1, "holds model.path", dir / "run" / "final");
}

TEST(OutputSafety, InitModelWritesOverAModelOnlyWithOverwriteAndNeverOverItsTokenizer) {
  ScratchDir dir("out-model");
  const Job job(dir.path());
  const std::string tokenizer = (source_dir() / "data" / "tokenizer").string();
  const std::string init = "init-model --arch llama --tokenizer ";
  expect_refused(init + tokenizer + " --seed 7 --out " + job.model.string(), 1,
                 job.model.string() + ": exists and is not empty; percetrain writes over a model folder only with "
                                      "--overwrite",
                 job.model);
  expect_refused(init + job.model.string() + " --out " + job.model.string() + " --overwrite", 2, "is --tokenizer",
                 job.model);
  expect_refused(init + (job.model / "tokenizer.model").string() + " --out " + job.model.string() + " --overwrite", 2,
                 "holds --tokenizer", job.model);
  expect_refused("logprobs --model " + job.model.string() + " --ids 1,2,3 --loss-grad " +
                     (job.model / "model.safetensors").string(),
                 2, "is inside --model", job.model);

}

TEST(OutputSafety, MergeAdapterWritesOverAModelOnlyWithOverwriteAndKeepsForeignFiles) {
  ScratchDir dir("out-merge");
  const Job job(dir.path());
  const std::string tokenizer = (source_dir() / "data" / "tokenizer").string();
  // merge-adapter onto a finished model: refused without --overwrite, never onto its inputs.
  auto r = run_percetrain("train --config " + job.config.string() + " --quiet --set model.path=" + job.model.string() +
                          " --set output.dir=" + (dir / "run").string() +
                          " --set train.max_steps=1 --set data.valid_file= --set lora.rank=2");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string merge = "merge-adapter --model " + job.model.string() + " --adapter " + (dir / "run" / "final").string();
  r = run_percetrain(merge + " --out " + (dir / "merged").string());
  ASSERT_EQ(r.status, 0) << r.output;
  expect_refused(merge + " --out " + (dir / "merged").string(), 1, "only with --overwrite", dir / "merged");
  expect_refused(merge + " --out " + job.model.string() + " --overwrite", 2, "is --model", job.model);
  expect_refused(merge + " --out " + (dir / "run" / "final").string() + " --overwrite", 2, "is --adapter",
                 dir / "run" / "final");
  expect_refused(merge + " --out " + (job.model / "merged").string() + " --overwrite", 2, "is inside --model",
                 job.model);

  // --overwrite replaces the model's files and keeps the user's own.
  write_file(dir / "merged" / "README.md", "my notes\n");
  const auto weights = sha256_file((dir / "merged" / "model.safetensors").string());
  r = run_percetrain("init-model --arch llama --tokenizer " + tokenizer + " --seed 9 --out " + (dir / "merged").string() +
                     " --overwrite");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("kept README.md, which percetrain did not write"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(dir / "merged" / "README.md"), "my notes\n");
  EXPECT_NE(sha256_file((dir / "merged" / "model.safetensors").string()), weights);
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

// A per-user adapter whose file no longer matches the checksum users.json recorded is refused by
// score --adapters (as train --resume already retrains it), naming the file.
TEST(OutputSafety, ADamagedPerUserAdapterIsRefusedByScore) {
  ScratchDir dir("out-adapters");
  const Job job(dir.path());
  auto r = run_percetrain("train --config " + job.config.string() + " --quiet --set model.path=" + job.model.string() +
                          " --set output.dir=" + (dir / "run").string() +
                          " --set data.valid_file= --set data.max_records=8 --set train.epochs=1 --set lora.rank=2 "
                          "--set lora.per_user=true --set train.save_every=0");
  ASSERT_EQ(r.status, 0) << r.output;
  const fs::path weights = dir / "run" / "adapters" / "u00" / "adapter_model.safetensors";
  ASSERT_TRUE(fs::exists(weights));
  const std::string score = job.score((dir / "s.jsonl").string(), "--adapters " + (dir / "run" / "adapters").string());
  r = run_percetrain(score);
  ASSERT_EQ(r.status, 0) << "an intact adapter is used: " << r.output;

  std::string bytes = read_file(weights);
  bytes[bytes.size() - 3] ^= 0x01;  // a weight's bit: the safetensors header still parses
  write_file(weights, bytes);
  fs::remove(dir / "s.jsonl");
  r = run_percetrain(score);
  EXPECT_EQ(r.status, 1) << r.output;
  const auto errors = error_lines(r.output);
  ASSERT_EQ(errors.size(), 1u) << r.output;
  EXPECT_NE(errors[0].find(weights.string() + ": does not match the checksum recorded in " +
                           (dir / "run" / "users.json").string()),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir / "s.jsonl"));
}

}  // namespace
