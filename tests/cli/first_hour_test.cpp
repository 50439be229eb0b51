// A newcomer's first hour through the binary (issue 27): --set paths against the current folder,
// Hugging Face repository ids from a local cache, Hugging Face's key names answered with
// percetrain's, --set mistakes blamed on --set (exit status 2), the device hint, a short config
// summary, and the commands train prints at its end working when pasted.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace fs = std::filesystem;
using percetrain::testing_util::read_file;
using percetrain::testing_util::run_command;
using percetrain::testing_util::ScratchDir;
using percetrain::testing_util::source_dir;
using percetrain::testing_util::write_file;

// Named: test files are compiled in unity batches, where anonymous namespaces merge.
namespace first_hour {

struct Outcome {
  int status = -1;
  std::string out, err;
};

// Runs `command` (a shell fragment) in `dir` with `env` ("NAME=value ..." or ""), stdout and
// stderr apart.
Outcome run_in(const fs::path& dir, const std::string& command, const std::string& env = "") {
  const fs::path err = dir / ".stderr";
  const auto r = run_command("cd '" + dir.string() + "' && " + env + (env.empty() ? "" : " ") + command + " 2>'" +
                                 err.string() + "'",
                             /*with_stderr=*/false);
  Outcome o{r.status, r.output, read_file(err)};
  fs::remove(err);
  return o;
}

std::string bin() { return PERCETRAIN_BINARY; }
std::string demo_config() { return (source_dir() / "configs" / "demo.json").string(); }
std::string tokenizer() { return (source_dir() / "data" / "tokenizer").string(); }

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

// A tiny random model at `out`.
void init_model(const fs::path& out, int seed = 0) {
  const auto r = run_command(bin() + " init-model --arch llama --tokenizer " + tokenizer() + " --out '" + out.string() +
                             "' --seed " + std::to_string(seed));
  ASSERT_EQ(r.status, 0) << r.output;
}

// A Hugging Face cache under `hub` holding repository `owner`/`name` at commit `commit`, with
// refs/main naming it, the way huggingface-cli download leaves it.
fs::path fake_cache_repo(const fs::path& hub, const std::string& owner, const std::string& name,
                         const std::string& commit) {
  const fs::path repo = hub / ("models--" + owner + "--" + name);
  fs::create_directories(repo / "refs");
  fs::create_directories(repo / "snapshots");
  fs::create_directories(repo / "blobs");
  write_file(repo / "refs" / "main", commit);
  return repo / "snapshots" / commit;
}

TEST(FirstHour, SetPathsResolveAgainstTheCurrentFolder) {
  const ScratchDir dir("percetrain-first-hour");
  fs::copy_file(source_dir() / "data" / "demo" / "valid.jsonl", dir / "mine.jsonl");
  // A path given with --set is the current folder's; before, it was looked up as configs/mine.jsonl.
  const Outcome o = run_in(dir.path(), bin() + " inspect-data --config " + demo_config() +
                                           " --set data.train_file=mine.jsonl --limit 0");
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_TRUE(contains(o.out, "records")) << o.out;
  // A missing one names the path under the current folder.
  const Outcome missing = run_in(dir.path(), bin() + " inspect-data --config " + demo_config() +
                                                 " --set data.train_file=nothere.jsonl --limit 0");
  EXPECT_EQ(missing.status, 1);
  EXPECT_TRUE(contains(missing.err, (dir / "nothere.jsonl").string())) << missing.err;
  // Paths written in the config still resolve against its folder (the demo's ../data/...).
  const Outcome config = run_in(dir.path(), bin() + " inspect-data --config " + demo_config() + " --limit 0");
  EXPECT_EQ(config.status, 0) << config.err;
  // --help says the rule.
  const Outcome help = run_in(dir.path(), bin() + " score --help");
  EXPECT_TRUE(contains(help.out, "--set values and options such as --data, --out, --model resolve against the current "
                                 "folder"))
      << help.out;
}

TEST(FirstHour, RepositoryIdsResolveFromTheLocalHuggingFaceCache) {
  const ScratchDir dir("percetrain-first-hour");
  const fs::path hub = dir / "hub";
  const std::string commit = "0123456789abcdef0123456789abcdef01234567";
  const fs::path snapshot = fake_cache_repo(hub, "acme", "tiny", commit);
  init_model(snapshot);
  write_file(hub / "models--acme--tiny" / "refs" / "v1", commit);
  const std::string env = "HF_HUB_CACHE='" + hub.string() + "'";
  const std::string logprobs = bin() + " logprobs --text 'Great coffee.' --model ";

  for (const std::string& id : std::vector<std::string>{"acme/tiny", "acme/tiny@main", "acme/tiny@v1", "acme/tiny@" + commit}) {
    SCOPED_TRACE(id);
    const Outcome o = run_in(dir.path(), logprobs + id, env);
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_TRUE(contains(o.err, snapshot.string())) << o.err;  // "model <folder>: llama, ..."
    EXPECT_TRUE(contains(o.out, "total log P")) << o.out;
  }
  // HF_HOME/hub when HF_HUB_CACHE is not set.
  fs::create_directories(dir / "home");
  fs::rename(hub, dir / "home" / "hub");
  const fs::path moved = dir / "home" / "hub" / "models--acme--tiny" / "snapshots" / commit;
  const Outcome home =
      run_in(dir.path(), "env -u HF_HUB_CACHE -u HUGGINGFACE_HUB_CACHE HF_HOME='" + (dir / "home").string() + "' " +
                             logprobs + "acme/tiny");
  EXPECT_EQ(home.status, 0) << home.err;
  EXPECT_TRUE(contains(home.err, moved.string())) << home.err;
  const std::string home_env = "HF_HUB_CACHE='" + (dir / "home" / "hub").string() + "'";

  // A job config's model.path (here through --set) and the score job built on it.
  const Outcome score = run_in(dir.path(),
                               bin() + " score --config " + demo_config() +
                                   " --set model.path=acme/tiny --out s.jsonl --limit 1 --quiet",
                               home_env);
  EXPECT_EQ(score.status, 0) << score.err;
  EXPECT_TRUE(fs::exists(dir / "s.jsonl"));

  // A local folder that exists wins over the repository id.
  init_model(dir / "acme" / "tiny", 1);
  const Outcome local = run_in(dir.path(), logprobs + "acme/tiny", home_env);
  EXPECT_EQ(local.status, 0) << local.err;
  EXPECT_TRUE(contains(local.err, (dir / "acme" / "tiny").string())) << local.err;
  EXPECT_FALSE(contains(local.err, "snapshots")) << local.err;

  // Absent: the error says which command downloads it; nothing is downloaded.
  const Outcome absent = run_in(dir.path(), logprobs + "Qwen/Qwen3-4B", home_env);
  EXPECT_EQ(absent.status, 1);
  EXPECT_EQ(std::count(absent.err.begin(), absent.err.end(), '\n'), 1) << absent.err;
  EXPECT_TRUE(contains(absent.err, "--model: 'Qwen/Qwen3-4B' is neither a local path")) << absent.err;
  EXPECT_TRUE(contains(absent.err, "huggingface-cli download Qwen/Qwen3-4B")) << absent.err;
  EXPECT_TRUE(contains(absent.err, "hf download Qwen/Qwen3-4B")) << absent.err;
  EXPECT_FALSE(fs::exists(dir / "home" / "hub" / "models--Qwen--Qwen3-4B"));
  // A revision the cache lacks names the ones it has.
  const Outcome revision = run_in(dir.path(), logprobs + "acme/tiny@v2", home_env);
  EXPECT_EQ(revision.status, 1);
  EXPECT_TRUE(contains(revision.err, "but not revision 'v2'")) << revision.err;
  EXPECT_TRUE(contains(revision.err, "its refs: ")) << revision.err;
  EXPECT_TRUE(contains(revision.err, "--revision v2")) << revision.err;
  // In a config file, the error names the file and key.
  write_file(dir / "job.json", R"({"model": {"path": "Qwen/Qwen3-4B"}, "tokenizer": {"path": ")" + tokenizer() +
                                   R"("}, "data": {"test_file": "x.jsonl"}})");
  const Outcome config = run_in(dir.path(), bin() + " score --config job.json --out s2.jsonl", home_env);
  EXPECT_EQ(config.status, 1);
  EXPECT_TRUE(contains(config.err, (dir / "job.json").string() + ": model.path: 'Qwen/Qwen3-4B'")) << config.err;
}

TEST(FirstHour, HuggingFaceKeyNamesAreAnsweredWithPercetrainsNames) {
  const ScratchDir dir("percetrain-first-hour");
  const std::string score = bin() + " score --config " + demo_config() + " --out s.jsonl ";
  for (const auto& [set, says] : std::vector<std::pair<std::string, std::string>>{
           {"train.learning_rate=1e-3", "train.learning_rate is Hugging Face's name; percetrain calls it train.lr"},
           {"train.num_train_epochs=2", "percetrain calls it train.epochs"},
           {"train.gradient_accumulation_steps=4", "percetrain calls it train.batch_size"},
           {"train.per_device_train_batch_size=2", "percetrain calls it train.micro_batch_size"},
           {"train.max_grad_norm=1", "percetrain calls it train.grad_clip"},
           {"learning_rate=1e-3", "learning_rate is Hugging Face's name; percetrain calls it train.lr"}}) {
    SCOPED_TRACE(set);
    const Outcome o = run_in(dir.path(), score + "--set " + set);
    EXPECT_EQ(o.status, 2) << o.err;
    EXPECT_TRUE(contains(o.err, says)) << o.err;
    EXPECT_FALSE(contains(o.err, "warmup_ratio")) << o.err;
  }
  // The same in a config file (exit status 1: a bad file).
  write_file(dir / "job.json", R"({"model": {"path": "m"}, "train": {"learning_rate": 1e-3}})");
  const Outcome file = run_in(dir.path(), bin() + " score --config job.json --out s.jsonl");
  EXPECT_EQ(file.status, 1) << file.err;
  EXPECT_TRUE(contains(file.err, (dir / "job.json").string() + ": train.learning_rate: unknown key")) << file.err;
  EXPECT_TRUE(contains(file.err, "percetrain calls it train.lr")) << file.err;
}

TEST(FirstHour, MistakesNameTheirSource) {
  const ScratchDir dir("percetrain-first-hour");
  const std::string score = bin() + " score --config " + demo_config() + " --out s.jsonl ";
  // A bad --set value is the command line's mistake, not the config file's: exit status 2.
  for (const auto& [set, says] : std::vector<std::pair<std::string, std::string>>{
           {"train.lr=fast", "--set train.lr=fast: has the wrong type"},
           {"train.lr=-1", "--set train.lr=-1: -1 is out of range"},
           {"objective.name=percee", "--set objective.name=percee: 'percee' is not allowed"},
           {"train.batch_size=6", "--set train.batch_size=6: must be a positive multiple"}}) {
    SCOPED_TRACE(set);
    const Outcome o = run_in(dir.path(), score + "--set " + set);
    EXPECT_EQ(o.status, 2) << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
    EXPECT_TRUE(contains(o.err, "percetrain: error: " + says)) << o.err;
    EXPECT_FALSE(contains(o.err, "demo.json")) << o.err;
  }
  // An unknown key: exit status 2.
  EXPECT_EQ(run_in(dir.path(), score + "--set train.lrr=1").status, 2);
  // --config errors show the absolute path.
  const Outcome missing = run_in(dir.path(), bin() + " score --config nope.json --out s.jsonl");
  EXPECT_EQ(missing.status, 2);
  EXPECT_TRUE(contains(missing.err, "'" + (dir / "nope.json").string() + "' does not exist")) << missing.err;
  write_file(dir / "job.json", R"({"model": {"path": "m"}, "train": {"lr": "fast"}})");
  const Outcome bad = run_in(dir.path(), bin() + " score --config job.json --out s.jsonl");
  EXPECT_EQ(bad.status, 1);
  EXPECT_TRUE(contains(bad.err, (dir / "job.json").string() + ": train.lr: has the wrong type")) << bad.err;
}

TEST(FirstHour, TheDeviceHintNamesASettingThatExists) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is visible: model.device=cuda is valid here";
  const ScratchDir dir("percetrain-first-hour");
  init_model(dir / "m");
  const Outcome job = run_in(dir.path(), bin() + " score --config " + demo_config() +
                                             " --set model.path=m --set model.device=cuda --out s.jsonl --limit 1");
  EXPECT_EQ(job.status, 1);
  EXPECT_TRUE(contains(job.err, "model.device: 'cuda' was asked for")) << job.err;
  EXPECT_TRUE(contains(job.err, "--set model.device=cpu")) << job.err;
  EXPECT_FALSE(contains(job.err, "--device")) << job.err;
  // Where --device is an option, the hint names it.
  const Outcome option = run_in(dir.path(), bin() + " logprobs --model m --text hi --device cuda");
  EXPECT_EQ(option.status, 1);
  EXPECT_TRUE(contains(option.err, "--device: 'cuda' was asked for")) << option.err;
  EXPECT_TRUE(contains(option.err, "use --device cpu")) << option.err;
}

TEST(FirstHour, HelpListsEveryObjectiveAndTheScoreExampleScoresATrainedModel) {
  const auto train = run_command(bin() + " train --help");
  for (const char* name : {"ce", "perce", "lossce", "entce", "dft", "rho1", "weights_from_data"})
    EXPECT_TRUE(contains(train.output, std::string(name) + (std::string(name) == "weights_from_data" ? "." : ","))) << name;
  const auto score = run_command(bin() + " score --help");
  EXPECT_TRUE(contains(score.output, "--set model.path=build/demo/run/final")) << score.output;
}

TEST(FirstHour, OutputFilesAreReplacedAndSaySo) {
  const ScratchDir dir("percetrain-first-hour");
  const std::string data = (source_dir() / "data" / "demo" / "test.jsonl").string();
  write_file(dir / "p.jsonl", R"({"id": "x", "prediction": "a b"})" "\n");
  write_file(dir / "r.jsonl", R"({"id": "x", "output": "a b"})" "\n");
  write_file(dir / "e.json", "old");
  const Outcome eval = run_in(dir.path(), bin() + " eval --predictions p.jsonl --references r.jsonl --out e.json");
  EXPECT_EQ(eval.status, 0) << eval.err;
  EXPECT_TRUE(contains(eval.err, "wrote e.json (replacing the file that was there)")) << eval.err;
  EXPECT_NE(read_file(dir / "e.json"), "old");
  // report has no --overwrite: the error says why none is needed.
  const Outcome report = run_in(dir.path(), bin() + " report run --overwrite");
  EXPECT_EQ(report.status, 2);
  EXPECT_TRUE(contains(report.err, "report replaces its output files without --overwrite")) << report.err;
}

// The end of a run: a short summary instead of the whole config, and the next commands, which
// work as printed from the folder the run was started in.
TEST(FirstHour, TrainPrintsASummaryAndNextCommandsThatWork) {
  const ScratchDir dir("percetrain-first-hour");
  const std::string train = bin() + " train --config " + demo_config() +
                            " --set model.path=model --set output.dir=run --set train.max_steps=2 "
                            "--set generate.max_new_tokens=8";
  const Outcome o = run_in(dir.path(), train);
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_TRUE(fs::exists(dir / "model" / "config.json"));  // --set model.path=model: here, not in configs/
  EXPECT_TRUE(fs::exists(dir / "run" / "final" / "config.json"));
  EXPECT_FALSE(contains(o.err, "effective config")) << o.err;
  EXPECT_TRUE(contains(o.err, "objective: perce")) << o.err;
  EXPECT_TRUE(contains(o.err, "run/job_config.json; --verbose prints them here")) << o.err;

  const auto next = o.err.find("next:\n");
  ASSERT_NE(next, std::string::npos) << o.err;
  std::vector<std::string> commands;
  std::istringstream lines(o.err.substr(next + 6));
  for (std::string line; std::getline(lines, line) && line.rfind("  ", 0) == 0;) commands.push_back(line.substr(2));
  ASSERT_EQ(commands.size(), 4u) << o.err;
  EXPECT_TRUE(contains(commands[0], " score ")) << commands[0];
  EXPECT_TRUE(contains(commands[0], "--set model.path=run/final")) << commands[0];
  EXPECT_TRUE(contains(commands[0], "--html run/scores.html")) << commands[0];
  std::vector<Outcome> ran;
  for (const auto& command : commands) {
    SCOPED_TRACE(command);
    ran.push_back(run_in(dir.path(), command));
    EXPECT_EQ(ran.back().status, 0) << ran.back().err;
  }
  // The scored model is the trained one ("model <folder>: llama, ...").
  EXPECT_TRUE(contains(ran[0].err, "model " + (dir / "run" / "final").string())) << ran[0].err;
  EXPECT_TRUE(fs::exists(dir / "run" / "scores.jsonl"));
  EXPECT_TRUE(fs::exists(dir / "run" / "scores.html"));
  EXPECT_TRUE(fs::exists(dir / "run" / "predictions.jsonl"));
  EXPECT_TRUE(fs::exists(dir / "run" / "eval.json"));
  EXPECT_TRUE(fs::exists(dir / "run" / "report.html"));

  const Outcome verbose = run_in(dir.path(), train + " --overwrite --verbose --set train.max_steps=1");
  EXPECT_EQ(verbose.status, 0) << verbose.err;
  EXPECT_TRUE(contains(verbose.err, "effective config:\n{")) << verbose.err;
}

}  // namespace first_hour
