// Training LoRA adapters: only the adapters train (the base bitwise unchanged), checkpoints hold
// the adapter and resume exactly, bf16 with checkpointing and a chunked loss, continuing an
// adapter, the float64 reference reading what training wrote, and per-user adapters used by
// score and generate.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "percetrain/dist/communicator.hpp"
#include "percetrain/generate/generate_job.hpp"
#include "percetrain/io/safetensors.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "model/reference_adapter.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/score/scorer.hpp"
#include "percetrain/train/adapters.hpp"
#include "percetrain/train/fused_adamw.hpp"
#include "percetrain/train/master_weights.hpp"
#include "percetrain/train/step.hpp"
#include "percetrain/train/trainer.hpp"
#include "percetrain/util/checksum.hpp"
#include "percetrain/util/error.hpp"
#include "synthetic_examples.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace percetrain;
using percetrain::testing_util::ScratchDir;

namespace lora_training_test {

// The trainer tests' synthetic examples with every id below `vocab`.
std::vector<PairedExample> examples(int count, uint64_t seed, int vocab = 96) {
  return testing_util::synthetic_examples(count, seed, {10, 20, 30, 50, vocab - 50});
}

JobConfig lora_job(const fs::path& dir) {
  JobConfig c;
  c.file = (dir / "job.json").string();
  c.model.path = (dir / "model").string();
  c.model.device = "cpu";
  c.model.dtype = "float32";
  c.model.init_arch = "llama";
  c.tokenizer.path = (testing_util::source_dir() / "data" / "tokenizer").string();
  c.objective.name = ObjectiveKind::kPerce;
  c.lora.rank = 4;
  c.lora.alpha = 8;
  c.lora.target_modules = {"q_proj", "v_proj", "down_proj"};
  c.train.lr = 1e-2;
  c.train.batch_size = 8;
  c.train.micro_batch_size = 2;
  c.train.epochs = 2;
  c.train.warmup_steps = 1;
  c.train.weight_decay = 0.1;  // decay would move the base if it reached the optimizer
  c.train.seed = 5;
  c.output.dir = (dir / "out").string();
  return c;
}

TrainOptions quiet() {
  TrainOptions o;
  o.progress = false;
  return o;
}

std::map<std::string, torch::Tensor> read_adapter(const fs::path& folder) {
  SafetensorsFile file((folder / "adapter_model.safetensors").string());
  std::map<std::string, torch::Tensor> out;
  for (const auto& entry : file.entries()) out[entry.name] = file.load(entry.name);
  return out;
}

::testing::AssertionResult same_adapter(const fs::path& a, const fs::path& b) {
  const auto x = read_adapter(a), y = read_adapter(b);
  if (x.size() != y.size()) return ::testing::AssertionFailure() << "different tensor sets";
  for (const auto& [name, t] : x) {
    const auto it = y.find(name);
    if (it == y.end()) return ::testing::AssertionFailure() << name << " missing in " << b;
    if (!torch::equal(t, it->second)) return ::testing::AssertionFailure() << name << " differs";
  }
  return ::testing::AssertionSuccess();
}

double max_abs_b(const fs::path& folder) {
  double m = 0;
  for (const auto& [name, t] : read_adapter(folder))
    if (name.find("lora_B") != std::string::npos) m = std::max(m, t.abs().max().item<double>());
  return m;
}

std::vector<double> loss_curve(const fs::path& metrics) {
  std::ifstream in(metrics);
  std::vector<double> out;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"]);
  }
  return out;
}

}  // namespace lora_training_test

using namespace lora_training_test;

// One TrainStep as the trainer runs it, with weight decay and clipping on: the optimizer and
// masters hold exactly the adapters, the base stays bitwise what it was, B moves.
TEST(LoraTraining, OnlyTheAdaptersTrainAndTheBaseStaysBitwiseUnchanged) {
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    ModelConfig mc = preset_model_config("llama", "tiny", 96);
    CausalLM model(mc);
    init_weights(*model, 3, 0.02);
    model->to(dtype);
    std::map<std::string, torch::Tensor> before;
    for (const auto& p : model->named_parameters()) before[p.key()] = p.value().clone();

    ScratchDir dir;
    JobConfig config = lora_job(dir.path());
    attach_lora(*model, config.lora, 1);
    const auto trainable = trainable_parameters(*model);
    int64_t count = 0;
    for (const auto& [name, t] : trainable) {
      EXPECT_NE(name.find(".lora_"), std::string::npos) << name;
      EXPECT_EQ(t.scalar_type(), torch::kFloat32) << name;
      count += t.numel();
    }
    // layers x rank x (in + out) summed over q_proj, v_proj and down_proj, as the config implies.
    const int64_t C = mc.hidden_size, q = mc.num_attention_heads * mc.head_dim, kv = mc.num_key_value_heads * mc.head_dim;
    EXPECT_EQ(count, mc.num_hidden_layers * 4 * ((C + q) + (C + kv) + (mc.intermediate_size + C)));
    EXPECT_EQ(count, lora_parameter_count(mc, config.lora));
    EXPECT_EQ(count, trainable_parameter_count(*model));
    const auto comm = make_single_rank_communicator();
    Optimization optimization = build_optimization(*model, config.train, *comm);
    EXPECT_FALSE(optimization.masters->active()) << "fp32 adapters need no masters, whatever the base's dtype";
    const auto objective = make_objective(config.objective);
    StepSettings settings = StepSettings::from(config, 0, torch::kCPU);
    TrainStep step(*model, *objective, *optimization.optimizer, *optimization.sync, settings);
    const auto data = examples(8, 4);
    std::vector<size_t> all(data.size());
    std::iota(all.begin(), all.end(), 0);
    for (int s = 0; s < 3; ++s) EXPECT_TRUE(step.run(data, all, 1e-2, s).finite);

    for (const auto& p : model->named_parameters()) {
      EXPECT_TRUE(torch::equal(p.value(), before[p.key()])) << p.key() << " changed";
      EXPECT_FALSE(p.value().grad().defined()) << p.key() << " has a gradient";
    }
    double moved = 0;
    for (const auto& [name, t] : lora_parameters(*model))
      if (name.find("lora_B") != std::string::npos) moved += t.abs().sum().item<double>();
    EXPECT_GT(moved, 0.0) << "B must move from 0";
  }
}

// The trainer with a lora section: checkpoints hold the adapter and its optimizer state only
// (dropout masks are a function of the step and the samples); final/ is a PEFT folder naming the
// base; stop + resume ends bitwise equal, with dropout.
TEST(LoraTraining, CheckpointsHoldTheAdapterAndResumeIsBitwise) {
  ScratchDir dir;
  const auto data = examples(24, 9);
  const auto valid = examples(4, 10);
  auto full = lora_job(dir.path());
  full.lora.dropout = 0.1;  // the resumed run must drop what the uninterrupted one dropped
  full.output.dir = (dir / "full").string();
  const auto summary = train_on_examples(full, quiet(), data, valid, full.tokenizer.path, 0);
  EXPECT_EQ(summary.steps_done, 6);
  const std::string model_sha = sha256_file(full.model.path + "/model.safetensors");

  const fs::path checkpoint = dir / "full" / "checkpoint-6";
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(checkpoint)) files.insert(e.path().filename().string());
  EXPECT_EQ(files, (std::set<std::string>{"adapter_config.json", "adapter_model.safetensors", "optimizer.pt",
                                          "trainer_state.json"}));
  const fs::path final_dir = dir / "full" / "final";
  const auto config = nlohmann::json::parse(testing_util::read_file(final_dir / "adapter_config.json"));
  EXPECT_EQ(config["base_model_name_or_path"], full.model.path);
  EXPECT_EQ(config["r"], 4);
  EXPECT_EQ(config["lora_dropout"], 0.1);
  EXPECT_EQ(config["target_modules"], nlohmann::json({"q_proj", "v_proj", "down_proj"}));
  EXPECT_FALSE(fs::exists(final_dir / "model.safetensors"));
  EXPECT_TRUE(same_adapter(final_dir, checkpoint));
  EXPECT_GT(max_abs_b(final_dir), 1e-4);
  const auto curve = loss_curve(dir / "full" / "metrics.jsonl");
  ASSERT_EQ(curve.size(), 6u);
  EXPECT_LT(curve.back(), curve.front());

  auto resumed = full;
  resumed.output.dir = (dir / "resumed").string();
  TrainOptions stop = quiet();
  stop.stop_after_steps = 4;
  EXPECT_TRUE(train_on_examples(resumed, stop, data, valid, resumed.tokenizer.path, 0).final_model_dir.empty());
  // Checkpoints of older versions hold the dropout generator as lora_dropout.pt: it is not read.
  for (const auto& e : fs::directory_iterator(dir / "resumed"))
    if (e.path().filename().string().rfind("checkpoint-", 0) == 0)
      testing_util::write_file(e.path() / "lora_dropout.pt", "an older version's generator state");
  TrainOptions resume = quiet();
  resume.resume = true;
  train_on_examples(resumed, resume, data, valid, resumed.tokenizer.path, 0);
  EXPECT_TRUE(same_adapter(dir / "resumed" / "final", final_dir));
  EXPECT_EQ(loss_curve(dir / "resumed" / "metrics.jsonl"), curve);
  EXPECT_EQ(sha256_file(full.model.path + "/model.safetensors"), model_sha) << "the base folder was written";

  // A resumed run with another rank is refused, naming the key.
  auto other = resumed;
  other.lora.rank = 8;
  EXPECT_TRUE(testing_util::throws_error([&] { train_on_examples(other, resume, data, valid, other.tokenizer.path, 0); },
                                         "lora.rank 4 -> 8"));
}

// A bf16 base with gradient checkpointing and a chunked loss trains the fp32 adapters exactly as
// without checkpointing, and near the fp32 run.
TEST(LoraTraining, Bf16BaseWithCheckpointingAndChunkedLoss) {
  ScratchDir dir;
  const auto data = examples(16, 3);
  auto fp32 = lora_job(dir.path());
  fp32.train.epochs = 1;
  fp32.lora.dropout = 0.1;
  fp32.objective.chunk_tokens = 3;
  fp32.output.dir = (dir / "fp32").string();
  train_on_examples(fp32, quiet(), data, {}, fp32.tokenizer.path, 0);
  auto bf16 = fp32;
  bf16.model.dtype = "bfloat16";
  bf16.output.dir = (dir / "bf16").string();
  train_on_examples(bf16, quiet(), data, {}, bf16.tokenizer.path, 0);
  auto checkpointed = bf16;
  checkpointed.train.gradient_checkpointing = true;
  checkpointed.output.dir = (dir / "bf16-ckpt").string();
  train_on_examples(checkpointed, quiet(), data, {}, checkpointed.tokenizer.path, 0);

  EXPECT_TRUE(same_adapter(dir / "bf16" / "final", dir / "bf16-ckpt" / "final"));
  EXPECT_FALSE(fs::exists(dir / "bf16" / "checkpoint-2" / "master_weights.pt"));
  const auto a = read_adapter(dir / "fp32" / "final"), b = read_adapter(dir / "bf16" / "final");
  double diff = 0, size = 0;
  for (const auto& [name, t] : a) {
    EXPECT_EQ(b.at(name).scalar_type(), torch::kFloat32);
    if (name.find("lora_B") == std::string::npos) continue;
    diff += (t - b.at(name)).abs().sum().item<double>();
    size += t.abs().sum().item<double>();
  }
  EXPECT_GT(size, 0.0);
  EXPECT_LT(diff, 0.25 * size) << "the bf16 base's adapters should follow the fp32 run's";
}

// `train --adapter DIR` (lora.init_adapter) continues the adapter instead of a fresh one.
TEST(LoraTraining, ContinuesAnExistingAdapter) {
  ScratchDir dir;
  const auto data = examples(8, 2);
  auto first = lora_job(dir.path());
  first.train.epochs = 3;
  first.output.dir = (dir / "first").string();
  train_on_examples(first, quiet(), data, {}, first.tokenizer.path, 0);

  auto next = first;
  next.lora = LoraSection{};  // rank 0: the adapter's own settings
  next.lora.init_adapter = (dir / "first" / "final").string();
  next.train.lr = 1e-12;  // Adam moves each weight by ~lr: the result is the loaded adapter
  next.train.epochs = 1;
  next.output.dir = (dir / "next").string();
  train_on_examples(next, quiet(), data, {}, next.tokenizer.path, 0);
  const auto a = read_adapter(dir / "first" / "final"), b = read_adapter(dir / "next" / "final");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::allclose(t, b.at(name), 0.0, 1e-9)) << name;
  EXPECT_GT(max_abs_b(dir / "next" / "final"), 1e-4) << "a fresh adapter would have B = 0";

  auto wrong = next;
  wrong.lora.rank = 8;
  wrong.output.dir = (dir / "wrong").string();
  EXPECT_TRUE(testing_util::throws_error([&] { train_on_examples(wrong, quiet(), data, {}, wrong.tokenizer.path, 0); },
                                         "lora.rank: 8 differs from r = 4"));
}

// The adapter a training run writes, read by the float64 reference (scripts/make_model_goldens.py
// --check-adapter: PEFT's key set, names, shapes, F32) on the golden Llama base, gives the
// log-probs percetrain computes with it.
TEST(LoraTraining, TheReferenceReadsTheAdapterTrainingWrote) {
  if (testing_util::run_command("/usr/bin/python3 -c 'import torch, numpy'").status != 0)
    GTEST_SKIP() << "/usr/bin/python3 with torch and numpy is absent (apt-get install python3-torch python3-numpy)";
  ScratchDir dir;
  const fs::path base = testing_util::golden_dir() / "models" / "llama";
  auto job = lora_job(dir.path());
  job.model.path = base.string();
  job.model.init_arch.clear();
  job.lora.target_modules = {"k_proj", "o_proj", "up_proj"};
  train_on_examples(job, quiet(), examples(8, 6), {}, job.tokenizer.path, 0);
  const fs::path adapter = dir / "out" / "final";
  EXPECT_GT(max_abs_b(adapter), 1e-4);

  LoadedModel loaded = load_causal_lm(base.string(), torch::kCPU, torch::kFloat32);
  load_lora_adapter(*loaded.model, adapter.string());
  testing_util::expect_reference_reads_adapter(*loaded.model, adapter, base, 2 * 3 * 2);
}

// lora.per_user on three users of the demo set: one adapter each under adapters/<user>/, recorded
// in the manifest and users.json, one base loaded for all; a stop after the first user and a
// resume end with the same adapters; score --adapters gives each test record its user's adapter
// (different scores) and users without one the base's (identical scores); generate likewise.
TEST(PerUserAdapters, OneAdapterPerUserUsedByScoreAndGenerate) {
  ScratchDir dir;
  JobConfig config = load_job_config((testing_util::source_dir() / "configs" / "demo.json").string());
  config.model.path = (dir / "model").string();
  config.output.dir = (dir / "run").string();
  config.data.max_records = 24;  // users u00, u01, u02: 8 reviews each
  config.data.valid_file.clear();
  config.lora.rank = 4;
  config.lora.per_user = true;
  config.train.epochs = 2;
  config.train.lr = 2e-2;
  const auto summary = run_training(config, quiet());
  EXPECT_EQ(summary.total_steps, 6);  // 3 users x 2 epochs x 1 step of 8
  EXPECT_EQ(summary.final_model_dir, (dir / "run" / "adapters").string());
  const auto manifest = nlohmann::json::parse(testing_util::read_file(dir / "run" / "percetrain-run.json"));
  const auto users = nlohmann::json::parse(testing_util::read_file(dir / "run" / "users.json"));
  for (const std::string user : {"u00", "u01", "u02"}) {
    const fs::path adapter = dir / "run" / "adapters" / user;
    EXPECT_TRUE(fs::exists(adapter / "adapter_config.json")) << user;
    EXPECT_GT(max_abs_b(adapter), 1e-4) << user;
    EXPECT_TRUE(manifest["files"].contains("adapters/" + user)) << user;
    EXPECT_EQ(users["users"][user]["train_examples"], 8) << user;
  }
  EXPECT_EQ(users["users"].size(), 3u);
  EXPECT_FALSE(same_adapter(dir / "run" / "adapters" / "u00", dir / "run" / "adapters" / "u01"));

  auto resumed = config;
  resumed.output.dir = (dir / "resumed").string();
  TrainOptions stop = quiet();
  stop.stop_after_steps = 1;
  EXPECT_TRUE(run_training(resumed, stop).final_model_dir.empty());
  EXPECT_TRUE(fs::exists(dir / "resumed" / "adapters" / "u00"));
  EXPECT_FALSE(fs::exists(dir / "resumed" / "adapters" / "u01"));
  TrainOptions resume = quiet();
  resume.resume = true;
  run_training(resumed, resume);
  for (const std::string user : {"u00", "u01", "u02"})
    EXPECT_TRUE(same_adapter(dir / "resumed" / "adapters" / user, dir / "run" / "adapters" / user)) << user;
  EXPECT_EQ(loss_curve(dir / "resumed" / "metrics.jsonl"), loss_curve(dir / "run" / "metrics.jsonl"));

  // Scores of the first five test records (users u00..u04), one record per forward pass.
  JobConfig scoring = config;
  scoring.data.max_records = 5;
  auto score = [&](const std::string& adapters, const std::string& name) {
    ScoreOptions o;
    o.out = (dir / name).string();
    o.progress = false;
    o.micro_batch_size = 1;
    o.adapters = adapters;
    const auto result = run_scoring(scoring, scoring.data.test_file, "", o);
    std::map<std::string, nlohmann::json> out;
    std::ifstream in(o.out);
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      out[j["id"]] = j;
    }
    return std::make_pair(result, out);
  };
  const auto [base_result, base] = score("", "base.jsonl");
  const auto [per_user_result, per_user] = score((dir / "run" / "adapters").string(), "per-user.jsonl");
  EXPECT_EQ(per_user_result.records_without_adapter, 2);
  const auto summary_json = nlohmann::json::parse(testing_util::read_file(dir / "per-user.summary.json"));
  EXPECT_EQ(summary_json["records_without_adapter"], 2);
  ASSERT_EQ(base.size(), 5u);
  ASSERT_EQ(per_user.size(), 5u);
  for (const auto& [id, record] : base) {
    const bool has_adapter = id.rfind("u00", 0) == 0 || id.rfind("u01", 0) == 0 || id.rfind("u02", 0) == 0;
    EXPECT_EQ(record["tokens"] == per_user.at(id)["tokens"], !has_adapter) << id;
  }
  // The output keeps the data's order although records are visited adapter by adapter.
  std::ifstream in(dir / "per-user.jsonl");
  std::vector<std::string> order;
  for (std::string line; std::getline(in, line);) order.push_back(nlohmann::json::parse(line)["id"]);
  EXPECT_EQ(order, (std::vector<std::string>{"u00_r15", "u01_r15", "u02_r15", "u03_r15", "u04_r15"}));

  // generate --adapters: greedy predictions differ where a user has an adapter, equal the base's where not.
  JobConfig decoding = scoring;
  decoding.generate.temperature = 0;
  decoding.generate.max_new_tokens = 12;
  auto generate = [&](const std::string& adapters, const std::string& name) {
    GenerateJobOptions o;
    o.data = decoding.data.test_file;
    o.out = (dir / name).string();
    o.limit = 5;
    o.adapters = adapters;
    run_generation(decoding, o);
    std::vector<nlohmann::json> out;
    std::ifstream in(o.out);
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  };
  const auto base_predictions = generate("", "base-predictions.jsonl");
  const auto user_predictions = generate((dir / "run" / "adapters").string(), "user-predictions.jsonl");
  ASSERT_EQ(base_predictions.size(), 5u);
  ASSERT_EQ(user_predictions.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(user_predictions[i]["id"], base_predictions[i]["id"]);
    if (i >= 3) EXPECT_EQ(user_predictions[i]["prediction"], base_predictions[i]["prediction"]) << i;
  }
  EXPECT_TRUE(testing_util::throws_error([&] { generate((dir / "run").string(), "x.jsonl"); }, "holds no adapter folders"));
}
