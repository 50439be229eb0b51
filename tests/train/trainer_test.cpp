// Batching alignment, the LR schedule, exact gradient accumulation, determinism and bitwise
// resume of the trainer on a tiny model and synthetic paired examples.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "percetrain/model/hf_folder.hpp"
#include "percetrain/train/checkpoint.hpp"
#include "percetrain/train/step.hpp"
#include "percetrain/train/trainer.hpp"
#include "percetrain/util/error.hpp"
#include "synthetic_examples.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace percetrain;
using percetrain::testing_util::ScratchDir;

namespace {

using testing_util::synthetic_examples;

JobConfig tiny_job(const fs::path& dir, const std::string& objective = "perce") {
  JobConfig c;
  c.file = (dir / "job.json").string();
  c.model.path = (dir / "model").string();
  c.model.device = "cpu";
  c.model.dtype = "float32";
  c.model.init_arch = "llama";
  c.tokenizer.path = (testing_util::source_dir() / "data" / "tokenizer").string();
  if (!enum_from_name(objective, &c.objective.name)) ADD_FAILURE() << objective;
  c.train.lr = 3e-3;
  c.train.batch_size = 8;
  c.train.micro_batch_size = 2;
  c.train.epochs = 2;
  c.train.warmup_steps = 1;
  c.train.seed = 11;
  c.output.dir = (dir / "out").string();
  return c;
}

TrainOptions quiet() {
  TrainOptions o;
  o.progress = false;
  return o;
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Schedule, WarmupThenLinearOrCosineDecay) {
  TrainSection t;
  t.lr = 1.0;
  t.warmup_steps = 2;
  t.schedule = Schedule::kLinear;
  EXPECT_DOUBLE_EQ(learning_rate_at(t, 0, 10), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate_at(t, 1, 10), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate_at(t, 2, 10), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate_at(t, 6, 10), 0.5);
  t.schedule = Schedule::kCosine;
  EXPECT_NEAR(learning_rate_at(t, 6, 10), 0.5, 1e-12);
  EXPECT_NEAR(learning_rate_at(t, 10, 10), 0.0, 1e-12);
  t.schedule = Schedule::kConstant;
  EXPECT_DOUBLE_EQ(learning_rate_at(t, 9, 10), 1.0);
}

// One optimizer step with 4 micro-batches of 2 equals one step with one micro-batch of 8.
TEST(Trainer, GradientAccumulationEqualsTheLargerBatch) {
  for (const Normalization normalize : {Normalization::kTokens, Normalization::kSequences}) {
    ScratchDir dir;
    auto examples = synthetic_examples(8, 5);
    auto a = tiny_job(dir.path() / "a");
    a.objective.normalize = normalize;
    a.train.max_steps = 1;
    a.train.grad_clip = 0.0;
    // With eps >> |g| Adam's first update is ~ lr * g, linear in the gradient, so the comparison
    // sees gradient differences instead of Adam's sign-like amplification of rounding.
    a.train.adam_eps = 1.0;
    a.train.lr = 1.0;
    a.train.warmup_steps = 0;
    a.train.schedule = Schedule::kConstant;
    a.model.path = (dir / "model").string();
    auto b = a;
    b.output.dir = (dir / "b-out").string();
    b.train.micro_batch_size = 8;
    train_on_examples(a, quiet(), examples, {}, a.tokenizer.path, 0);
    train_on_examples(b, quiet(), examples, {}, b.tokenizer.path, 0);
    auto ma = load_causal_lm(a.output.dir + "/final", torch::kCPU, torch::kFloat32);
    auto mb = load_causal_lm(b.output.dir + "/final", torch::kCPU, torch::kFloat32);
    auto initial = load_causal_lm(a.model.path, torch::kCPU, torch::kFloat32);
    auto pb = mb.model->named_parameters(), p0 = initial.model->named_parameters();
    double max_diff = 0.0, max_update = 0.0;
    for (const auto& item : ma.model->named_parameters()) {
      max_diff = std::max(max_diff, (item.value() - pb[item.key()]).abs().max().item<double>());
      max_update = std::max(max_update, (item.value() - p0[item.key()]).abs().max().item<double>());
    }
    EXPECT_GT(max_update, 1e-4) << "the step must move the parameters";
    EXPECT_LT(max_diff, 1e-6) << enum_name(normalize) << ": accumulation changed the update";
  }
}

TEST(Trainer, SameSeedSameLossCurveAndResumeIsBitwise) {
  ScratchDir dir;
  auto examples = synthetic_examples(24, 9);
  auto valid = synthetic_examples(4, 10);
  auto full = tiny_job(dir.path());
  full.model.path = (dir / "model").string();
  full.output.dir = (dir / "full").string();
  auto summary = train_on_examples(full, quiet(), examples, valid, full.tokenizer.path, 0);
  EXPECT_EQ(summary.steps_done, 6);  // 2 epochs x 3 steps
  EXPECT_TRUE(fs::exists(dir / "full" / "final" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "full" / "job_config.json"));

  auto again = full;
  again.output.dir = (dir / "again").string();
  train_on_examples(again, quiet(), examples, valid, again.tokenizer.path, 0);
  auto curve = [](const fs::path& p) {
    std::vector<double> losses;
    for (const auto& line : read_lines(p)) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("loss")) losses.push_back(j["loss"]);
    }
    return losses;
  };
  auto first = curve(dir / "full" / "metrics.jsonl");
  ASSERT_EQ(first.size(), 6u);
  EXPECT_EQ(first, curve(dir / "again" / "metrics.jsonl"));
  EXPECT_LT(first.back(), first.front()) << "training should lower the loss";

  auto interrupted = full;
  interrupted.output.dir = (dir / "resumed").string();
  TrainOptions stop = quiet();
  stop.stop_after_steps = 4;
  auto partial = train_on_examples(interrupted, stop, examples, valid, interrupted.tokenizer.path, 0);
  EXPECT_EQ(partial.steps_done, 4);
  EXPECT_TRUE(partial.final_model_dir.empty());
  TrainOptions resume = quiet();
  resume.resume = true;
  train_on_examples(interrupted, resume, examples, valid, interrupted.tokenizer.path, 0);
  EXPECT_EQ(curve(dir / "resumed" / "metrics.jsonl"), first);

  auto a = load_causal_lm((dir / "full" / "final").string(), torch::kCPU, torch::kFloat32);
  auto b = load_causal_lm((dir / "resumed" / "final").string(), torch::kCPU, torch::kFloat32);
  auto pb = b.model->named_parameters();
  for (const auto& item : a.model->named_parameters())
    EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key() << " differs after resume";

  // keep_last = 2: only the newest checkpoints stay.
  int checkpoints = 0;
  for (const auto& e : fs::directory_iterator(dir / "resumed"))
    checkpoints += e.path().filename().string().rfind("checkpoint-", 0) == 0;
  EXPECT_EQ(checkpoints, 2);
}

// L1 distance between the parameters of two saved models, in fp32.
// `a_dtype` is the dtype `a` is read in before the comparison (bf16 runs start from bf16-rounded
// weights).
double parameter_distance(const fs::path& a, const fs::path& b, c10::ScalarType a_dtype = torch::kFloat32) {
  auto x = load_causal_lm(a.string(), torch::kCPU, a_dtype);
  x.model->to(torch::kFloat32);
  auto y = load_causal_lm(b.string(), torch::kCPU, torch::kFloat32);
  auto py = y.model->named_parameters();
  double total = 0;
  for (const auto& item : x.model->named_parameters())
    total += (item.value() - py[item.key()]).abs().sum().item<double>();
  return total;
}

TEST(Trainer, Bf16WithMasterWeightsTracksFp32AndResumesExactly) {
  ScratchDir dir;
  auto examples = synthetic_examples(24, 9);
  // An lr whose Adam steps (~lr per element) are below half a bf16 ulp of typical weights
  // (~6e-5 at 0.02): in-place bf16 updates round away, fp32 masters accumulate them.
  auto fp32 = tiny_job(dir.path());
  fp32.train.lr = 2e-5;
  fp32.output.dir = (dir / "fp32").string();
  train_on_examples(fp32, quiet(), examples, {}, fp32.tokenizer.path, 0);

  auto mixed = fp32;
  mixed.model.dtype = "bfloat16";
  mixed.output.dir = (dir / "mixed").string();
  train_on_examples(mixed, quiet(), examples, {}, mixed.tokenizer.path, 0);
  EXPECT_TRUE(fs::exists(dir / "mixed" / "checkpoint-6" / "master_weights.pt"));

  auto pure = mixed;
  pure.train.master_weights = false;
  pure.output.dir = (dir / "pure").string();
  train_on_examples(pure, quiet(), examples, {}, pure.tokenizer.path, 0);
  EXPECT_FALSE(fs::exists(dir / "pure" / "checkpoint-6" / "master_weights.pt"));

  // How far each run moved the weights from the initial model (L1). Adam steps are ~lr per
  // element whatever the gradient's precision, so the fp32 masters move as far as the fp32 run;
  // pure bf16 loses most updates to rounding.
  const double moved = parameter_distance(dir / "model", dir / "fp32" / "final");
  const double pure_moved = parameter_distance(dir / "model", dir / "pure" / "final", torch::kBFloat16);
  std::vector<torch::Tensor> masters;
  torch::load(masters, (dir / "mixed" / "checkpoint-6" / "master_weights.pt").string());
  auto initial = load_causal_lm((dir / "model").string(), torch::kCPU, torch::kBFloat16);
  initial.model->to(torch::kFloat32);
  double master_moved = 0;
  size_t i = 0;
  for (const auto& p : initial.model->parameters()) {
    ASSERT_LT(i, masters.size());
    EXPECT_EQ(masters[i].scalar_type(), torch::kFloat32);
    master_moved += (masters[i++] - p).abs().sum().item<double>();
  }
  EXPECT_EQ(i, masters.size());
  std::cout << "L1 movement from the initial weights: fp32 " << moved << ", bf16 with fp32 masters " << master_moved
            << ", pure bf16 " << pure_moved << "\n";
  EXPECT_NEAR(master_moved, moved, 0.05 * moved);
  EXPECT_LT(pure_moved, 0.6 * moved);

  // Stop after step 4 and resume: the masters come back from the checkpoint, so the end is the same.
  auto resumed = mixed;
  resumed.output.dir = (dir / "resumed").string();
  TrainOptions stop = quiet();
  stop.stop_after_steps = 4;
  train_on_examples(resumed, stop, examples, {}, resumed.tokenizer.path, 0);
  TrainOptions resume = quiet();
  resume.resume = true;
  train_on_examples(resumed, resume, examples, {}, resumed.tokenizer.path, 0);
  EXPECT_EQ(parameter_distance(dir / "mixed" / "final", dir / "resumed" / "final"), 0.0);
}

TEST(Trainer, Float16TrainingIsRefusedWithAHint) {
  ScratchDir dir;
  auto job = tiny_job(dir.path());
  job.model.dtype = "float16";
  EXPECT_TRUE(testing_util::throws_error([&] { train_on_examples(job, quiet(), synthetic_examples(4, 1), {}, job.tokenizer.path, 0); },
                                         "use bfloat16"));
}

TEST(Trainer, NonFiniteLossStopsWithAClearError) {
  ScratchDir dir;
  auto job = tiny_job(dir.path());
  job.train.lr = 1e30;
  job.train.grad_clip = 0.0;
  job.train.max_steps = 6;
  job.train.batch_size = 2;
  try {
    train_on_examples(job, quiet(), synthetic_examples(12, 1), {}, job.tokenizer.path, 0);
    FAIL() << "expected a non-finite loss";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not finite"), std::string::npos) << e.what();
  }
}

// valid_ce rows of a metrics file as (step, value), in order.
std::vector<std::pair<int64_t, double>> valid_series(const fs::path& metrics, const std::string& key) {
  std::vector<std::pair<int64_t, double>> out;
  for (const auto& line : read_lines(metrics)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains(key)) out.emplace_back(j["step"].get<int64_t>(), j[key].get<double>());
  }
  return out;
}

TEST(Trainer, EarlyStoppingKeepsTheBestModelAndAResumedRunStopsAtTheSameStep) {
  ScratchDir dir;
  auto examples = synthetic_examples(24, 9);
  auto valid = synthetic_examples(4, 10);
  auto job = tiny_job(dir.path());
  // A constant LR, so that a run cut at any step equals the first steps of a longer one; a high
  // one, so that validation CE turns up within the budget (overfitting 24 examples).
  job.train.schedule = Schedule::kConstant;
  job.train.lr = 2e-2;
  job.train.epochs = 10;
  job.train.eval_every = 1;
  job.train.best_metric = BestMetric::kValidCe;
  job.train.early_stopping_patience = 3;
  job.output.dir = (dir / "full").string();
  const auto summary = train_on_examples(job, quiet(), examples, valid, job.tokenizer.path, 0);

  // The rule, applied to the logged series: stop when 3 evaluations in a row did not improve.
  const auto series = valid_series(dir / "full" / "metrics.jsonl", "valid_ce");
  ASSERT_FALSE(series.empty());
  double best = series[0].second;
  int64_t best_step = series[0].first, since = 0, expected_stop = -1;
  for (size_t i = 1; i < series.size() && expected_stop < 0; ++i) {
    if (series[i].second < best) best = series[i].second, best_step = series[i].first, since = 0;
    else if (++since >= 3) expected_stop = series[i].first;
  }
  ASSERT_GT(expected_stop, 0) << "validation CE never stopped improving: the test proves nothing";
  EXPECT_EQ(summary.steps_done, expected_stop);
  EXPECT_EQ(series.back().first, expected_stop) << "nothing is evaluated after the stop";
  EXPECT_NE(summary.stopped_early.find("valid_ce has not improved for 3 evaluations"), std::string::npos)
      << summary.stopped_early;
  EXPECT_FALSE(summary.final_model_dir.empty()) << "an early stop ends like the last step: final/ is written";
  EXPECT_TRUE(fs::exists(dir / "full" / checkpoint_name(expected_stop) / "trainer_state.json"));
  std::ifstream about_file(dir / "full" / "best" / "best_metric.json");
  const auto about = nlohmann::json::parse(about_file);
  EXPECT_EQ(about.value("metric", ""), "valid_ce");
  EXPECT_EQ(about.value("step", int64_t{-1}), best_step);
  EXPECT_EQ(about.value("value", 0.0), best);

  // best/ is the model after best_step steps: a run of exactly that many steps ends there.
  auto cut = job;
  cut.train.best_metric = BestMetric::kNone;
  cut.train.early_stopping_patience = 0;
  cut.train.max_steps = best_step;
  cut.output.dir = (dir / "cut").string();
  train_on_examples(cut, quiet(), examples, valid, cut.tokenizer.path, 0);
  EXPECT_EQ(parameter_distance(dir / "cut" / "final", dir / "full" / "best"), 0.0);
  EXPECT_GT(parameter_distance(dir / "full" / "final", dir / "full" / "best"), 0.0);

  // Stopped after the best step, before the early stop, then resumed: the replayed metrics give
  // the same best and patience, so it stops at the same step with the same models.
  ASSERT_LT(best_step + 1, expected_stop);
  auto interrupted = job;
  interrupted.output.dir = (dir / "resumed").string();
  TrainOptions stop = quiet();
  stop.stop_after_steps = best_step + 1;
  train_on_examples(interrupted, stop, examples, valid, interrupted.tokenizer.path, 0);
  TrainOptions resume = quiet();
  resume.resume = true;
  const auto resumed = train_on_examples(interrupted, resume, examples, valid, interrupted.tokenizer.path, 0);
  EXPECT_EQ(resumed.steps_done, expected_stop);
  EXPECT_EQ(resumed.stopped_early, summary.stopped_early);
  EXPECT_EQ(valid_series(dir / "resumed" / "metrics.jsonl", "valid_ce"), series);
  EXPECT_EQ(parameter_distance(dir / "full" / "final", dir / "resumed" / "final"), 0.0);
  EXPECT_EQ(parameter_distance(dir / "full" / "best", dir / "resumed" / "best"), 0.0);

  // Resuming a run that stopped early trains no further.
  const auto again = train_on_examples(interrupted, resume, examples, valid, interrupted.tokenizer.path, 0);
  EXPECT_EQ(again.steps_done, expected_stop);
  EXPECT_EQ(valid_series(dir / "resumed" / "metrics.jsonl", "valid_ce"), series);
}

TEST(Trainer, BestMetricWithoutValidationDataIsAnError) {
  ScratchDir dir;
  auto job = tiny_job(dir.path());
  job.train.best_metric = BestMetric::kValidCe;
  EXPECT_TRUE(testing_util::throws_error(
      [&] { train_on_examples(job, quiet(), synthetic_examples(8, 1), {}, job.tokenizer.path, 0); },
      "train.best_metric: needs validation examples, and there are none"));
}

TEST(Trainer, Rho1TrainsAgainstTheReferenceModelAndKeepingEveryTokenIsCe) {
  ScratchDir dir;
  auto examples = synthetic_examples(16, 3);
  auto ce = tiny_job(dir.path(), "ce");
  ce.output.dir = (dir / "ce").string();
  train_on_examples(ce, quiet(), examples, {}, ce.tokenizer.path, 0);
  // The reference: the initial model (the folder the first run created).
  auto rho1 = tiny_job(dir.path(), "rho1");
  rho1.objective.reference_model = (dir / "model").string();
  rho1.objective.rho1_keep_ratio = 1.0;
  rho1.output.dir = (dir / "rho1-all").string();
  train_on_examples(rho1, quiet(), examples, {}, rho1.tokenizer.path, 0);
  EXPECT_EQ(parameter_distance(dir / "ce" / "final", dir / "rho1-all" / "final"), 0.0)
      << "keeping every token weighs each 1: exactly CE";
  rho1.objective.rho1_keep_ratio = 0.5;
  rho1.output.dir = (dir / "rho1-half").string();
  train_on_examples(rho1, quiet(), examples, {}, rho1.tokenizer.path, 0);
  EXPECT_GT(parameter_distance(dir / "ce" / "final", dir / "rho1-half" / "final"), 0.0);

  rho1.objective.reference_model = (dir / "no-such-model").string();
  rho1.output.dir = (dir / "rho1-missing").string();
  EXPECT_TRUE(testing_util::throws_error(
      [&] { train_on_examples(rho1, quiet(), examples, {}, rho1.tokenizer.path, 0); }, "no-such-model"));
}

}  // namespace
