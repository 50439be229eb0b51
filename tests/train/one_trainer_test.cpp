// One trainer for every run (issue 24): per-user adapter runs go through the same phases as the
// main run, so the run folder's rules, rho1's reference model, the metrics rows and validation
// hold for both, and what a mode cannot honour is refused in one line. Through the binary.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "percetrain/dist/grad_reducer.hpp"
#include "percetrain/train/run_dir.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using percetrain::testing_util::read_file;
using percetrain::testing_util::run_percetrain;
using percetrain::testing_util::ScratchDir;
using percetrain::testing_util::source_dir;
using percetrain::testing_util::write_file;

namespace one_trainer_test {

// `train` on the demo config with a tiny model of its own in `dir`, 24 records (users u00..u02).
std::string train_args(const ScratchDir& dir, const std::string& out, const std::string& extra) {
  return "train --quiet --config " + (source_dir() / "configs" / "demo.json").string() + " --set model.path=" +
         (dir / "model").string() + " --set output.dir=" + (dir / out).string() +
         " --set data.max_records=24 --set train.epochs=1 --set train.save_every=0 " + extra;
}

const std::string kPerUser = " --set lora.per_user=true --set lora.rank=4 ";

std::vector<json> rows(const fs::path& metrics) {
  std::vector<json> out;
  std::istringstream in(read_file(metrics));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

size_t error_line_count(const std::string& output) {
  size_t n = 0;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) n += line.find("error") != std::string::npos;
  return n;
}

}  // namespace one_trainer_test

using namespace one_trainer_test;

// A per-user run with train.resume auto used to remove an ordinary run's checkpoints and final/
// without a word; the main run with resume auto removed a per-user run's adapters the same way.
TEST(OneTrainer, NeitherKindOfRunRemovesTheOtherKind) {
  ScratchDir dir;
  ASSERT_EQ(run_percetrain(train_args(dir, "model-run", "--stop-after 1 --set train.save_every=1")).status, 0);
  ASSERT_TRUE(fs::exists(dir / "model-run" / "checkpoint-1"));
  auto r = run_percetrain(train_args(dir, "model-run", kPerUser + "--set train.resume=auto"));
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("holds a training run of one model"), std::string::npos) << r.output;
  EXPECT_EQ(error_line_count(r.output), 1u) << r.output;
  EXPECT_TRUE(fs::exists(dir / "model-run" / "checkpoint-1" / "trainer_state.json"));

  ASSERT_EQ(run_percetrain(train_args(dir, "user-run", kPerUser + "--stop-after 1")).status, 0);
  ASSERT_TRUE(fs::exists(dir / "user-run" / "adapters" / "u00" / "adapter_model.safetensors"));
  r = run_percetrain(train_args(dir, "user-run", "--set train.resume=auto"));
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("holds a per-user adapter run"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "user-run" / "adapters" / "u00" / "adapter_model.safetensors"));
  // --overwrite is the way to replace it, and removes only what that run wrote.
  write_file(dir / "user-run" / "notes.txt", "mine");
  EXPECT_EQ(run_percetrain(train_args(dir, "user-run", "--overwrite --stop-after 1 --set train.save_every=1")).status, 0);
  EXPECT_FALSE(fs::exists(dir / "user-run" / "adapters"));
  EXPECT_FALSE(fs::exists(dir / "user-run" / "users.json"));
  EXPECT_EQ(read_file(dir / "user-run" / "notes.txt"), "mine");
}

// Per-user with rho1 failed at its first step ("none was loaded"): it never loaded the reference.
TEST(OneTrainer, PerUserRunsLoadRho1sReferenceModel) {
  ScratchDir dir;
  ASSERT_EQ(run_percetrain(train_args(dir, "base-run", "--stop-after 1")).status, 0);  // makes dir/model
  const auto r = run_percetrain(train_args(dir, "rho1", kPerUser + "--set objective.name=rho1 --set objective.reference_model=" +
                                                            (dir / "model").string()));
  ASSERT_EQ(r.status, 0) << r.output;
  for (const std::string user : {"u00", "u01", "u02"})
    EXPECT_TRUE(fs::exists(dir / "rho1" / "adapters" / user / "adapter_model.safetensors")) << user;
}

// What a per-user run cannot honour is refused before anything is loaded, one line each.
TEST(OneTrainer, PerUserRefusesWhatItCannotHonour) {
  ScratchDir dir;
  for (const std::string setting : {"train.save_every=2", "train.best_metric=valid_ce",
                                    "train.eval_generate.every=4", "train.early_stopping_patience=2"}) {
    const auto r = run_percetrain(train_args(dir, "run", kPerUser + "--set " + setting));
    EXPECT_NE(r.status, 0) << setting << ": " << r.output;
    EXPECT_NE(r.output.find(setting.substr(0, setting.find('='))), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("lora.per_user"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir / "model")) << setting << ": the model was made before the refusal";
  }
}

// train --adapter is lora.init_adapter: the config's rules see it before anything is loaded.
TEST(OneTrainer, TheAdapterOptionIsValidatedWithTheConfig) {
  ScratchDir dir;
  const auto r = run_percetrain(train_args(dir, "run", kPerUser + "--adapter " + (dir / "some-adapter").string()));
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("lora.init_adapter"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("lora.per_user"), std::string::npos) << r.output;
  EXPECT_EQ(error_line_count(r.output), 1u) << r.output;
  EXPECT_FALSE(fs::exists(dir / "model"));
}

// Per-user metrics rows are the main run's rows (PIR quantiles, clipped shares) with the user,
// and validation follows train.eval_every on the user's own validation records.
TEST(OneTrainer, PerUserRowsAndValidationAreTheMainRunsWithTheUser) {
  ScratchDir dir;
  const auto r = run_percetrain(train_args(dir, "run", kPerUser + "--set train.batch_size=4 --set train.eval_every=1 "
                                                                  "--set train.log_every=1"));
  ASSERT_EQ(r.status, 0) << r.output;
  int64_t steps = 0, validations = 0;
  for (const auto& row : rows(dir / "run" / "metrics.jsonl")) {
    ASSERT_TRUE(row.contains("user")) << row.dump();
    if (row.contains("loss")) {
      ++steps;
      for (const char* key : {"pir_mean", "pir_p10", "pir_p50", "pir_p90", "clipped_low", "clipped_high", "user_step"})
        EXPECT_TRUE(row.contains(key)) << key << " missing in " << row.dump();
    }
    validations += row.contains("valid_ce");
  }
  EXPECT_EQ(steps, 6);  // 3 users x 8 reviews / 4
  // The demo's validation file has records of u00..u02, so every step of every user validates.
  EXPECT_EQ(validations, steps);
}

// With pir_scope word, valid_pir_mean was recomputed from token log-probs while pir_mean used the
// word-scope PIR. One step over every example at a learning rate too small to move a weight: the
// training row and the validation row (same examples) must then agree.
TEST(OneTrainer, WordScopeValidationPirMeansWhatTrainingPirMeans) {
  ScratchDir dir;
  const std::string train_file = (source_dir() / "data" / "demo" / "train.jsonl").string();
  const auto r = run_percetrain(train_args(
      dir, "run",
      "--set data.max_records=8 --set data.valid_file=" + train_file + " --set train.batch_size=8 --set train.max_steps=1 "
      "--set train.lr=1e-30 --set train.warmup_ratio=0 --set objective.pir_scope=word --set train.log_every=1"));
  ASSERT_EQ(r.status, 0) << r.output;
  double train_pir = std::nan(""), valid_pir = std::nan(""), valid_token_pir = std::nan("");
  for (const auto& row : rows(dir / "run" / "metrics.jsonl")) {
    if (row.contains("pir_mean")) train_pir = row["pir_mean"];
    if (row.contains("valid_pir_mean")) valid_pir = row["valid_pir_mean"];
  }
  ASSERT_FALSE(std::isnan(train_pir));
  ASSERT_FALSE(std::isnan(valid_pir));
  EXPECT_NEAR(valid_pir, train_pir, 1e-4);
  // And the word scope makes a difference on these examples (else the test would prove nothing).
  const auto token = run_percetrain(train_args(
      dir, "token",
      "--set data.max_records=8 --set data.valid_file=" + train_file + " --set train.batch_size=8 --set train.max_steps=1 "
      "--set train.lr=1e-30 --set train.warmup_ratio=0 --set train.log_every=1"));
  ASSERT_EQ(token.status, 0) << token.output;
  for (const auto& row : rows(dir / "token" / "metrics.jsonl"))
    if (row.contains("valid_pir_mean")) valid_token_pir = row["valid_pir_mean"];
  EXPECT_GT(std::abs(valid_token_pir - valid_pir), 1e-3);
}

// The run folder's leftover sweep removes the temporary files of every file a run writes
// (".users.json.tmpPID" was left behind), and nothing else.
TEST(OneTrainer, LeftoverTemporaryFilesOfAnyRunFileAreRemoved) {
  ScratchDir dir;
  { percetrain::RunDirectory run((dir / "run").string()); }
  for (const std::string name : {".users.json.tmp4242", ".metrics.jsonl.tmp17", ".job_config.json.tmp9"})
    write_file(dir / "run" / name, "half");
  write_file(dir / "run" / ".notes.txt.tmp5", "somebody else's");
  { percetrain::RunDirectory run((dir / "run").string()); }
  EXPECT_FALSE(fs::exists(dir / "run" / ".users.json.tmp4242"));
  EXPECT_FALSE(fs::exists(dir / "run" / ".metrics.jsonl.tmp17"));
  EXPECT_FALSE(fs::exists(dir / "run" / ".job_config.json.tmp9"));
  EXPECT_TRUE(fs::exists(dir / "run" / ".notes.txt.tmp5"));
}

// One gradient norm (fp64 sums) for one rank and many: splitting the gradient over tensors (or
// ranks) changes it by fp64 rounding only, and clipping scales like torch's clip_grad_norm_.
TEST(OneTrainer, OneGradientNormWhateverTheSplit) {
  torch::manual_seed(0);
  const auto whole = torch::randn({1000}) * 1e3;
  const auto parts = whole.split(333);
  double reference = 0;
  const auto data = whole.to(torch::kDouble);
  for (int64_t i = 0; i < data.numel(); ++i) reference += data[i].item<double>() * data[i].item<double>();
  reference = std::sqrt(reference);
  EXPECT_NEAR(percetrain::clip_grad_norm({whole.clone()}, 0), reference, reference * 1e-12);
  std::vector<at::Tensor> copies;
  for (const auto& p : parts) copies.push_back(p.clone());
  EXPECT_NEAR(percetrain::clip_grad_norm(copies, 0), reference, reference * 1e-12);
  auto clipped = whole.clone();
  const double norm = percetrain::clip_grad_norm({clipped}, 1.0);
  EXPECT_EQ(norm, percetrain::clip_grad_norm({whole.clone()}, 0));
  EXPECT_TRUE(torch::allclose(clipped, whole * (1.0 / (norm + 1e-6))));
}

// The most common reason to resume (issue 27): going on longer. A finished run resumed with a
// larger train.max_steps continues from its last checkpoint, on the new run's schedule, without
// a repeated step; a shorter one is refused. final/ has generation_config.json, as
// save_pretrained writes it.
TEST(OneTrainer, ARunResumedWithMoreStepsGoesOn) {
  ScratchDir dir;
  const std::string base = "--set train.max_steps=4 --set train.log_every=1 --set data.valid_file= ";
  ASSERT_EQ(run_percetrain(train_args(dir, "run", base)).status, 0);
  const json generation = json::parse(read_file(dir / "run" / "final" / "generation_config.json"));
  EXPECT_TRUE(generation.contains("eos_token_id")) << generation.dump();

  auto r = run_percetrain(train_args(dir, "run", base + "--resume --set train.max_steps=6").replace(
      0, 14, "train "));  // --quiet dropped: the line about the longer schedule is asserted
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("extending the run from 4 to 6 steps"), std::string::npos) << r.output;
  std::vector<int64_t> steps;
  for (const auto& row : rows(dir / "run" / "metrics.jsonl"))
    if (row.contains("loss")) steps.push_back(row["step"]);
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoint-6" / "trainer_state.json"));

  r = run_percetrain(train_args(dir, "run", base + "--resume --set train.max_steps=3"));
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("beyond the 3 steps"), std::string::npos) << r.output;
}

// Checkpoints are named as Hugging Face's Trainer names them (checkpoint-42); a run an older
// percetrain left with checkpoint-000042 resumes from it, and the old name does not linger.
TEST(OneTrainer, CheckpointsHaveHuggingFaceNamesAndOldNamesResume) {
  ScratchDir dir;
  const std::string base = "--set train.max_steps=4 --set train.save_every=2 --set data.valid_file= ";
  ASSERT_EQ(run_percetrain(train_args(dir, "run", base + "--stop-after 2")).status, 0);
  ASSERT_TRUE(fs::exists(dir / "run" / "checkpoint-2" / "trainer_state.json"));
  // What an older percetrain wrote: the padded name, in the folder and in the manifest.
  fs::rename(dir / "run" / "checkpoint-2", dir / "run" / "checkpoint-000002");
  std::string manifest = read_file(dir / "run" / "percetrain-run.json");
  const size_t at = manifest.find("\"checkpoint-2\"");
  ASSERT_NE(at, std::string::npos) << manifest;
  manifest.replace(at, std::string("\"checkpoint-2\"").size(), "\"checkpoint-000002\"");
  write_file(dir / "run" / "percetrain-run.json", manifest);
  const auto r = run_percetrain(train_args(dir, "run", base + "--resume").replace(0, 14, "train "));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resuming after step 2"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoint-4" / "trainer_state.json"));
  EXPECT_TRUE(fs::exists(dir / "run" / "final" / "model.safetensors"));
}
