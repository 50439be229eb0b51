// percetrain never loses or silently replaces a user's data: each case is a user's mistake or a
// fault, reproduced through the binary (issue "Never lose or silently replace a user's data").
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

extern char** environ;

namespace fs = std::filesystem;
using percetrain::testing_util::read_file;
using percetrain::testing_util::run_percetrain;
using percetrain::testing_util::ScratchDir;
using percetrain::testing_util::source_dir;
using percetrain::testing_util::write_file;

namespace {

std::string demo_config() { return (source_dir() / "configs" / "demo.json").string(); }

// A short demo training into `dir`: model at dir/model (created on first use), run at dir/run.
std::string train_args(const fs::path& dir, int64_t max_steps, const std::string& extra = "") {
  return "train --config " + demo_config() + " --quiet --set model.path=" + (dir / "model").string() +
         " --set output.dir=" + (dir / "run").string() + " --set train.max_steps=" + std::to_string(max_steps) +
         " --set data.valid_file= --set train.log_every=1 " + extra;
}

size_t count_lines(const fs::path& file) {
  std::ifstream in(file);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A background percetrain whose stderr goes to a file.
struct Child {
  pid_t pid = -1;
  Child(const std::string& args, const fs::path& log) {
    std::vector<std::string> argv = {"/bin/sh", "-c", "exec " + std::string(PERCETRAIN_BINARY) + " " + args + " 2>" + log.string()};
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    posix_spawn(&pid, "/bin/sh", nullptr, nullptr, raw.data(), environ);
  }
  int wait_status() {
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
  }
};

// Waits until `file` has at least `lines` lines (or the timeout passes).
bool wait_for_lines(const fs::path& file, size_t lines, double timeout_s = 60) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < timeout_s) {
    if (fs::exists(file) && count_lines(file) >= lines) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// 1. A model folder without config.json is never replaced, and only `train` initialises one.
TEST(DataSafety, ModelFoldersAreOnlyRead) {
  ScratchDir dir("safety-model");
  fs::create_directories(dir / "model");
  write_file(dir / "model" / "weights.bin", "precious");
  auto r = run_percetrain(train_args(dir.path(), 2));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("is not a Hugging Face model folder (no config.json)"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(dir / "model" / "weights.bin"), "precious");

  // score never initialises, even with model.init_arch in the config.
  r = run_percetrain("score --config " + demo_config() + " --set model.path=" + (dir / "absent").string() +
                     " --out " + (dir / "s.jsonl").string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("only `train` creates a random model"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "absent"));

  // train does, saying where, and then says which model it loaded.
  r = run_percetrain("train --config " + demo_config() + " --set model.path=" + (dir / "fresh").string() +
                     " --set output.dir=" + (dir / "run").string() + " --set train.max_steps=1 --set data.valid_file=");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("initialising a random llama/tiny model"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("at " + (dir / "fresh").string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("model " + (dir / "fresh").string() + ": llama,"), std::string::npos) << r.output;
}

// 2-3. A used output.dir: a fresh run is refused, --overwrite and pruning remove only what the
// manifest lists, and resume checks the recorded config.
TEST(DataSafety, OutputDirIsOwnedExplicitly) {
  ScratchDir dir("safety-output");
  auto r = run_percetrain(train_args(dir.path(), 4, "--set train.save_every=1 --set train.keep_last=2"));
  ASSERT_EQ(r.status, 0) << r.output;
  const fs::path run = dir / "run";
  EXPECT_TRUE(fs::exists(run / "percetrain-run.json"));
  EXPECT_EQ(entries(run), (std::vector<std::string>{".percetrain.lock", "checkpoint-3", "checkpoint-4",
                                                    "final", "job_config.json", "metrics.jsonl",
                                                    "percetrain-run.json", "tb"}));

  // A fresh run into it is refused, and nothing changes.
  const std::string metrics_before = read_file(run / "metrics.jsonl");
  r = run_percetrain(train_args(dir.path(), 4));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("holds an earlier run (newest checkpoint: step 4)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--resume"), std::string::npos);
  EXPECT_NE(r.output.find("--overwrite"), std::string::npos);
  EXPECT_EQ(read_file(run / "metrics.jsonl"), metrics_before);

  // Resume with another seed or objective is refused, naming the keys.
  r = run_percetrain(train_args(dir.path(), 6, "--resume --set train.seed=7 --set objective.name=ce"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("was written by a run with other settings"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("train.seed 42 -> 7"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("objective.name \"perce\" -> \"ce\""), std::string::npos) << r.output;

  // The user's own files inside percetrain's folders survive --overwrite and pruning.
  write_file(run / "final" / "NOTES.txt", "mine");
  write_file(run / "checkpoint-3" / "eval.txt", "mine too");
  write_file(run / "notes.md", "also mine");
  r = run_percetrain(train_args(dir.path(), 4, "--overwrite --set train.save_every=1 --set train.keep_last=1"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_file(run / "final" / "NOTES.txt"), "mine");
  EXPECT_TRUE(fs::exists(run / "final" / "model.safetensors"));
  EXPECT_EQ(read_file(run / "checkpoint-3" / "eval.txt"), "mine too");
  EXPECT_EQ(entries(run / "checkpoint-3"), (std::vector<std::string>{"eval.txt"})) << "pruned, not kept";
  EXPECT_EQ(read_file(run / "notes.md"), "also mine");
  EXPECT_NE(r.output.find("which percetrain did not write"), std::string::npos) << r.output;
}

// 3. Hugging Face Trainer's folders look like ours; percetrain never takes them for its own.
TEST(DataSafety, ForeignCheckpointFoldersAreNeverTouched) {
  ScratchDir dir("safety-foreign");
  fs::create_directories(dir / "run" / "checkpoint-000100");
  write_file(dir / "run" / "checkpoint-000100" / "trainer_state.json", "{}");
  auto r = run_percetrain(train_args(dir.path(), 2, "--set train.keep_last=1"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("holds files that percetrain did not record writing (checkpoint-000100/)"), std::string::npos)
      << r.output;
  r = run_percetrain(train_args(dir.path(), 2, "--resume"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoint-000100" / "trainer_state.json"));
}

// 4. One job per output.dir; a dead owner's lock is taken over, saying so.
TEST(DataSafety, ALockKeepsASecondJobOut) {
  ScratchDir dir("safety-lock");
  fs::create_directories(dir / "run");
  const std::string lock = (dir / "run" / ".percetrain.lock").string();
  {
    const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
    ASSERT_EQ(::write(fd, "12345", 5), 5);
    const auto r = run_percetrain(train_args(dir.path(), 1));
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("is in use by another percetrain job (pid 12345)"), std::string::npos) << r.output;
    ::close(fd);  // releases the lock, as the kernel does when its owner dies
  }
  const auto r = run_percetrain(train_args(dir.path(), 1));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("taking over the lock of pid 12345, which is no longer running"), std::string::npos)
      << r.output;
}

// 5. SIGINT / SIGTERM: the current step finishes, a checkpoint is written, the resume command is
// printed, the exit status is 128 + signal, and the resumed run ends where the uninterrupted one does.
TEST(DataSafety, SignalsSaveAResumableCheckpoint) {
  ScratchDir dir("safety-signal");
  ScratchDir ref("safety-signal-ref");
  const int64_t steps = 40;
  auto r = run_percetrain(train_args(ref.path(), steps));
  ASSERT_EQ(r.status, 0) << r.output;
  fs::copy(ref / "model", dir / "model", fs::copy_options::recursive);
  for (const int sig : {SIGINT, SIGTERM}) {
    Child child(train_args(dir.path(), steps, sig == SIGINT ? "" : "--resume"), dir / "log.txt");
    ASSERT_TRUE(wait_for_lines(dir / "run" / "metrics.jsonl", sig == SIGINT ? 3 : 12)) << read_file(dir / "log.txt");
    ::kill(child.pid, sig);
    const int status = child.wait_status();
    const std::string log = read_file(dir / "log.txt");
    ASSERT_TRUE(WIFEXITED(status)) << log;
    EXPECT_EQ(WEXITSTATUS(status), 128 + sig) << log;
    EXPECT_NE(log.find("interrupted by " + std::string(sig == SIGINT ? "SIGINT" : "SIGTERM")), std::string::npos) << log;
    EXPECT_NE(log.find("continue with: "), std::string::npos) << log;
    EXPECT_NE(log.find(" --resume"), std::string::npos) << log;
  }
  r = run_percetrain(train_args(dir.path(), steps, "--resume"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_file(dir / "run" / "final" / "model.safetensors"), read_file(ref / "run" / "final" / "model.safetensors"));
}

// 6. A failed write (here: a file-size limit, as a full disk would) stops the job with one line
// naming the file and the cause; the next start cleans up what was half written.
TEST(DataSafety, AFailedWriteIsOneLineAndLeavesNothingHalfWritten) {
  ScratchDir dir("safety-disk");
  auto r = run_percetrain(train_args(dir.path(), 1, "--set output.dir=" + (dir / "probe").string()));
  ASSERT_EQ(r.status, 0) << r.output;
  // Enough for the model files, too little for optimizer.pt (twice the weights). /bin/sh counts
  // ulimit -f in 512-byte blocks.
  const auto blocks = (fs::file_size(dir / "probe" / "final" / "model.safetensors") + 65536) / 512;
  r = percetrain::testing_util::run_command("trap '' XFSZ; ulimit -f " + std::to_string(blocks) + "; exec " +
                                            std::string(PERCETRAIN_BINARY) + " " + train_args(dir.path(), 2));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("optimizer.pt: writing failed: File too large"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("terminate"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoint-2.partial"));
  r = run_percetrain(train_args(dir.path(), 2, "--overwrite"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("removing checkpoint-2.partial"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "run" / "checkpoint-2.partial"));
}

// 7. Flipped bytes in a checkpoint are found on resume; the earlier intact checkpoint is offered,
// and train.resume=auto falls back to it.
TEST(DataSafety, DamagedCheckpointsAreFoundAndAvoided) {
  ScratchDir dir("safety-damage");
  auto r = run_percetrain(train_args(dir.path(), 3, "--set train.save_every=1 --stop-after 2"));
  ASSERT_EQ(r.status, 0) << r.output;
  const fs::path newest = dir / "run" / "checkpoint-2" / "optimizer.pt";
  {
    std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(newest) / 2));
    f.put('\x5a');
  }
  r = run_percetrain(train_args(dir.path(), 3, "--set train.save_every=1 --resume"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("checkpoint-2: is damaged: optimizer.pt does not match its checksum"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("checkpoint-1 is intact"), std::string::npos) << r.output;
  fs::resize_file(newest, 100);  // truncated
  r = run_percetrain(train_args(dir.path(), 3, "--set train.save_every=1 --set train.resume=auto"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("checkpoint-2 is damaged (optimizer.pt does not match its checksum); falling back"),
            std::string::npos)
      << r.output;
  // Steps 2 and 3 were trained again after the fallback: the log reads as one run of 3 steps.
  EXPECT_EQ(count_lines(dir / "run" / "metrics.jsonl"), 3u);
}

// 8-9. Hostile and malformed input gets one error line, before any heavy work.
TEST(DataSafety, HostileInputIsRejectedClearly) {
  ScratchDir dir("safety-input");
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string good = read_file(source_dir() / "data" / "demo" / "valid.jsonl");
  const std::string first_line = good.substr(0, good.find('\n'));
  write_file(dir / "deep.jsonl", "{\"id\": " + deep + ", \"input\": \"x\", \"output\": \"y\", \"profile\": []}\n" + good);
  const std::string inspect = "inspect-data --config " + demo_config() + " --limit 0 --data ";
  auto r = run_percetrain(inspect + (dir / "deep.jsonl").string());
  EXPECT_EQ(r.status, 1) << r.output.substr(0, 500);
  EXPECT_NE(r.output.find("deep.jsonl:1: is nested deeper than 128 levels"), std::string::npos) << r.output.substr(0, 500);
  r = run_percetrain(inspect + (dir / "deep.jsonl").string() + " --set data.on_bad_record=skip");
  EXPECT_EQ(r.status, 0) << r.output.substr(0, 500);
  EXPECT_NE(r.output.find("records: 33, examples: 32, skipped: 1"), std::string::npos) << r.output.substr(0, 2000);

  write_file(dir / "deep.json", "{\"model\": {\"path\": \"m\"}, \"x\": " + std::string(1000000, '[') + "}");
  r = run_percetrain("train --config " + (dir / "deep.json").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("JSON nested deeper than 128 levels"), std::string::npos) << r.output.substr(0, 500);

  // A 50 MB response is rejected from its byte length, before tokenising it.
  std::string huge = first_line;
  const auto at = huge.find("\"output\": \"") + 11;
  huge.insert(at, std::string(50 * 1000 * 1000, 'a'));
  write_file(dir / "huge.jsonl", huge + "\n");
  r = run_percetrain(inspect + (dir / "huge.jsonl").string());
  EXPECT_EQ(r.status, 1) << r.output.substr(0, 500);
  EXPECT_NE(r.output.find("bytes) cannot fit in max_length 512 tokens"), std::string::npos) << r.output.substr(0, 500);

  r = run_percetrain(inspect + dir.path().string());
  EXPECT_NE(r.output.find("is a folder, not a data file"), std::string::npos) << r.output;
  write_file(dir / "bom.jsonl", "\xEF\xBB\xBF" + good);
  r = run_percetrain(inspect + (dir / "bom.jsonl").string());
  EXPECT_NE(r.output.find("starts with a UTF-8 byte-order mark (BOM)"), std::string::npos) << r.output;

  write_file(dir / "dup.json", R"({"model": {"path": "m"}, "train": {"lr": 1e-3, "lr": 1e-4}})");
  r = run_percetrain("train --config " + (dir / "dup.json").string());
  EXPECT_NE(r.output.find("train.lr: is given twice"), std::string::npos) << r.output;

  r = run_percetrain(train_args(dir.path(), 1, "--set train.beta1=2"));
  EXPECT_NE(r.output.find("--set train.beta1=2: 2 is out of range: it must be in [0, 1)"), std::string::npos) << r.output;
}

// 9. A model config that would make every log-prob NaN.
TEST(DataSafety, ModelConfigsAndVocabulariesAreChecked) {
  ScratchDir dir("safety-vocab");
  auto r = run_percetrain("init-model --arch llama --tokenizer " + (source_dir() / "data" / "tokenizer").string() +
                          " --out " + (dir / "m").string());
  ASSERT_EQ(r.status, 0) << r.output;
  std::string config = read_file(dir / "m" / "config.json");
  const size_t value = config.find(':', config.find("\"rope_theta\"")) + 1;
  config.replace(value, config.find_first_of(",}", value) - value, " -10000.0");
  write_file(dir / "m" / "config.json", config);
  r = run_percetrain("logprobs --model " + (dir / "m").string() + " --text hello");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("'rope_theta' must be positive"), std::string::npos) << r.output;
}

// The demo model (4,000 tokens) with the Llama 2 tokenizer (32,000 tokens). Its own suite: CTest
// reports it skipped where ../shared is absent, and DataSafety as passed.
TEST(DataSafetyLlama2, ATokenizerLargerThanTheModelIsRefused) {
  const fs::path llama2 = percetrain::testing_util::shared_fixtures_dir() / "llama2-tokenizer.model";
  if (!fs::exists(llama2)) GTEST_SKIP() << llama2 << " is absent (../shared/fixtures)";
  ScratchDir dir("safety-vocab-llama2");
  auto r = run_percetrain("init-model --arch llama --tokenizer " + (source_dir() / "data" / "tokenizer").string() +
                          " --out " + (dir / "m").string());
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_percetrain("score --config " + demo_config() + " --set model.path=" + (dir / "m").string() +
                     " --set tokenizer.path=" + llama2.string() + " --out " + (dir / "s.jsonl").string() + " --limit 2");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("its vocabulary has 4000 tokens, but the tokenizer " + llama2.string() +
                          " (32000 tokens) produced id"),
            std::string::npos)
      << r.output;
}

// 10. Command-line mistakes: one line naming the word, did-you-mean, exit status 2.
TEST(DataSafety, CommandLineMistakesAreOneLineWithExitStatus2) {
  struct Case {
    std::string args, expected;
  };
  const std::vector<Case> cases = {
      {"trian --config x", "unknown command 'trian' (did you mean 'train'?)"},
      {"--config x", "a command must come first, before '--config'"},
      {"train --confg x", "unknown option '--confg' for 'train' (did you mean '--config'?)"},
      {"bench --config " + demo_config() + " --steps many", "--steps"},
      {"score --config " + demo_config(), "--out is required"},
  };
  for (const auto& c : cases) {
    const auto r = run_percetrain(c.args);
    EXPECT_EQ(r.status, 2) << c.args << ": " << r.output;
    EXPECT_NE(r.output.find(c.expected), std::string::npos) << c.args << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << c.args << ": " << r.output;
  }
  const auto usage = run_percetrain("");
  EXPECT_EQ(usage.status, 2);
  EXPECT_NE(usage.output.find("Subcommands:"), std::string::npos) << usage.output;
}

// Soak: kill -9 at random moments, many of them inside checkpoint writes, and resume each time;
// the final model is byte-identical to an uninterrupted run.
TEST(DataSafety, KilledAtRandomMomentsAndResumedEndsIdentical) {
  ScratchDir dir("safety-soak");
  ScratchDir ref("safety-soak-ref");
  // 32 steps: on an idle fast machine a 16-step run finished within four starts, one kill short
  // of the threshold below.
  const int64_t steps = 32;
  const std::string options = "--set train.save_every=1 --set train.keep_last=2 --set train.resume=auto";
  auto r = run_percetrain(train_args(ref.path(), steps, options));
  ASSERT_EQ(r.status, 0) << r.output;
  fs::copy(ref / "model", dir / "model", fs::copy_options::recursive);
  std::mt19937 rng(20261130);
  int kills = 0, attempts = 0;
  const auto start = std::chrono::steady_clock::now();
  while (!fs::exists(dir / "run" / "final" / "model.safetensors") && attempts < 40) {
    ++attempts;
    Child child(train_args(dir.path(), steps, options), dir / "log.txt");
    // Start-up (LibTorch, data) takes about a second, a step about 0.1 s: some kills land in the
    // start-up, most in training; enough of them that a fast machine still needs several starts.
    std::this_thread::sleep_for(std::chrono::milliseconds(500 + rng() % 1000));
    if (::kill(child.pid, SIGKILL) == 0) ++kills;
    child.wait_status();
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > 25) break;
  }
  r = run_percetrain(train_args(dir.path(), steps, options));
  ASSERT_EQ(r.status, 0) << r.output;
  std::cout << kills << " kills over " << attempts << " starts\n";
  EXPECT_GE(kills, 5);
  EXPECT_EQ(read_file(dir / "run" / "final" / "model.safetensors"), read_file(ref / "run" / "final" / "model.safetensors"));
  for (const auto& name : entries(dir / "run"))
    EXPECT_EQ(name.find(".partial"), std::string::npos) << name << " left behind";
}

}  // namespace
