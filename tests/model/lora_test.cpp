// LoRA adapters: against golden log-probs and gradients of an independent reference (PEFT's
// layout written by scripts/make_model_goldens.py), merging, training-side invariants (B = 0 at
// step 0, gradients only in A and B, checkpointing, bf16 base), and one clear error per bad adapter.
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "percetrain/io/safetensors.hpp"
#include "percetrain/model/fused_ops.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "model/reference_adapter.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace percetrain;
using percetrain::testing_util::ScratchDir;
using percetrain::testing_util::throws_error;

namespace {

CausalLM lora_random_model(const std::string& arch, uint64_t seed = 7, double std = 0.2) {
  ModelConfig c = preset_model_config(arch, "tiny", 101);
  c.num_hidden_layers = 2;
  CausalLM model(c);
  init_weights(*model, seed, std);
  return model;
}

LoraSection lora_section(int64_t rank, std::vector<std::string> targets, double alpha = 16.0, double dropout = 0.0) {
  LoraSection s;
  s.rank = rank;
  s.alpha = alpha;
  s.dropout = dropout;
  s.target_modules = std::move(targets);
  return s;
}

// B as a trained adapter has it (attach leaves it 0), drawn from `seed`.
void randomise_b(CausalLMImpl& model, uint64_t seed, double std = 0.3) {
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(seed);
  for (auto& [name, t] : lora_parameters(model))
    if (name.find("lora_B") != std::string::npos)
      t.copy_(torch::empty(t.sizes(), torch::kFloat32).normal_(0.0, std, generator));
}

struct Batch {
  torch::Tensor ids, mask;
};

Batch random_batch(int64_t vocab, int64_t B = 2, int64_t T = 11, uint64_t seed = 3) {
  auto generator = at::detail::createCPUGenerator(seed);
  auto ids = torch::randint(3, vocab, {B, T}, generator, torch::kLong);
  auto mask = torch::ones({B, T}, torch::kLong);
  mask[B - 1].slice(0, 0, 3).zero_();  // left padding in the last row
  return {ids, mask};
}

std::map<std::string, torch::Tensor> adapter_grads(CausalLMImpl& model) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, t] : lora_parameters(model)) out[name] = t.grad().defined() ? t.grad().clone() : torch::Tensor();
  return out;
}

void zero_adapter_grads(CausalLMImpl& model) {
  for (auto& [name, t] : lora_parameters(model)) t.mutable_grad() = torch::Tensor();
}

// ---------------------------------------------------------------------------------------------
// Goldens: tests/golden/models/<case>/lora/ (see tests/golden/models/README.md).
class LoraGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LoraGoldenTest, LogprobsAndGradientsMatchTheReferenceMergedOrNot) {
  const fs::path base = testing_util::golden_dir() / "models" / GetParam();
  const fs::path adapter = base / "lora";
  ASSERT_TRUE(fs::exists(adapter / "golden.safetensors")) << adapter;
  LoadedModel loaded = load_causal_lm(base.string(), torch::kCPU, torch::kFloat32);
  CausalLMImpl& model = *loaded.model;
  const LoraSection lora = load_lora_adapter(model, adapter.string());
  SafetensorsFile inputs((base / "golden.safetensors").string());
  SafetensorsFile golden((adapter / "golden.safetensors").string());
  auto ids = inputs.load("input_ids", torch::kLong), mask = inputs.load("attention_mask", torch::kLong);
  auto expected = golden.load("logprobs", torch::kDouble);

  auto logprobs = model.next_token_logprobs(ids, mask);
  const double err = (logprobs.to(torch::kDouble) - expected).abs().max().item<double>();
  EXPECT_LT(err, 2e-5) << GetParam() << ": max |logprob - golden| = " << err;
  auto base_golden = inputs.load("logprobs", torch::kDouble);
  EXPECT_GT((expected - base_golden).abs().max().item<double>(), 0.1) << "the adapter changes the golden";

  const auto real = mask.to(torch::kBool);
  const auto select = real.slice(1, 0, ids.size(1) - 1).logical_and(real.slice(1, 1, ids.size(1)));
  auto loss = -logprobs.sum() / select.sum();
  EXPECT_NEAR(loss.item<double>(), golden.load("loss", torch::kDouble).item<double>(), 1e-5);
  loss.backward();
  auto params = lora_parameters(model);
  int checked = 0;
  for (const auto& entry : golden.entries()) {
    if (entry.name.rfind("grad.", 0) != 0) continue;
    const std::string name = entry.name.substr(5);
    auto it = std::find_if(params.begin(), params.end(), [&](const auto& p) { return p.first == name; });
    ASSERT_NE(it, params.end()) << name;
    auto want = golden.load(entry.name, torch::kDouble);
    const double scale = want.abs().max().item<double>();
    const double gerr = (it->second.grad().to(torch::kDouble) - want).abs().max().item<double>();
    EXPECT_LT(gerr, 1e-4 * scale + 1e-7) << name << " max err " << gerr << " (scale " << scale << ")";
    ++checked;
  }
  EXPECT_EQ(checked, 4);

  torch::NoGradGuard no_grad;
  merge_lora(model);
  auto merged = model.next_token_logprobs(ids, mask);
  EXPECT_LT((merged - logprobs).abs().max().item<double>(), 1e-5) << "merged differs from unmerged";
  unmerge_lora(model);
  detach_lora(model);
  EXPECT_LT((model.next_token_logprobs(ids, mask).to(torch::kDouble) - base_golden).abs().max().item<double>(), 2e-5)
      << "unmerge + detach give the base back";
  EXPECT_EQ(lora.target_modules.size(), GetParam() == "qwen3" ? 7u : 3u);
}

INSTANTIATE_TEST_SUITE_P(Architectures, LoraGoldenTest, ::testing::Values("llama", "qwen3"));

// ---------------------------------------------------------------------------------------------
TEST(Lora, StepZeroEqualsTheBaseModelAndANonZeroBChangesIt) {
  auto model = lora_random_model("llama");
  const auto batch = random_batch(101);
  torch::NoGradGuard no_grad;
  auto before = model->next_token_logprobs(batch.ids, batch.mask);
  attach_lora(*model, lora_section(4, {kAllLinear}), 11);
  ASSERT_TRUE(has_lora(*model));
  EXPECT_TRUE(torch::equal(model->next_token_logprobs(batch.ids, batch.mask), before)) << "B = 0 adds exactly 0";
  randomise_b(*model, 5);
  EXPECT_GT((model->next_token_logprobs(batch.ids, batch.mask) - before).abs().max().item<double>(), 1e-2)
      << "the adapters take part in the forward";
}

TEST(Lora, InitialisationIsPeftsKaimingUniformAndSeeded) {
  auto model = lora_random_model("qwen3");
  attach_lora(*model, lora_section(8, {"q_proj", "down_proj"}), 21);
  auto other = lora_random_model("qwen3");
  attach_lora(*other, lora_section(8, {"q_proj", "down_proj"}), 21);
  auto third = lora_random_model("qwen3");
  attach_lora(*third, lora_section(8, {"q_proj", "down_proj"}), 22);
  const auto params = lora_parameters(*model), same = lora_parameters(*other), different = lora_parameters(*third);
  ASSERT_EQ(params.size(), 2u * 2 * 2);  // 2 layers x 2 modules x (A, B)
  EXPECT_EQ(params[0].first, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(params[3].first, "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& [name, t] = params[i];
    EXPECT_EQ(t.scalar_type(), torch::kFloat32) << name;
    EXPECT_TRUE(t.requires_grad()) << name;
    EXPECT_TRUE(torch::equal(t, same[i].second)) << name << ": the same seed gives the same adapters";
    if (name.find("lora_B") != std::string::npos) {
      EXPECT_EQ(t.abs().max().item<double>(), 0.0) << name;
      continue;
    }
    const double bound = 1.0 / std::sqrt(static_cast<double>(t.size(1)));  // 1 / sqrt(in)
    EXPECT_LE(t.abs().max().item<double>(), bound) << name;
    EXPECT_GT(t.abs().max().item<double>(), 0.9 * bound) << name;
    // U(-b, b) has variance b^2 / 3.
    EXPECT_NEAR(t.pow(2).mean().item<double>(), bound * bound / 3.0, 0.25 * bound * bound / 3.0) << name;
    EXPECT_FALSE(torch::equal(t, different[i].second)) << name << ": another seed, other adapters";
  }
}

TEST(Lora, TrainableParametersAreExactlyWhatTheConfigImplies) {
  for (const std::string arch : {"llama", "qwen3"}) {
    for (const auto& lora : {lora_section(8, {"q_proj", "v_proj"}), lora_section(4, {kAllLinear}),
                             lora_section(2, {"k_proj", "gate_proj", "down_proj"})}) {
      auto model = lora_random_model(arch);
      int64_t full = 0;
      for (const auto& p : model->parameters()) full += p.numel();
      EXPECT_EQ(trainable_parameter_count(*model), full);
      attach_lora(*model, lora, 1);
      // r * (in + out) from the model's own projection weights, summed over the targeted ones.
      const auto targets = expand_target_modules(lora.target_modules, "test");
      int64_t expected = 0;
      for (const auto& p : model->named_parameters()) {
        const std::string& name = p.key();
        for (const auto& t : targets)
          if (name.find("." + t + ".weight") != std::string::npos)
            expected += lora.rank * (p.value().size(0) + p.value().size(1));
      }
      EXPECT_GT(expected, 0);
      EXPECT_EQ(trainable_parameter_count(*model), expected) << arch;
      EXPECT_EQ(lora_parameter_count(model->config(), lora), expected) << arch;
    }
  }
}

TEST(Lora, RanksVllmDoesNotServeGetAWarning) {
  for (const int64_t r : {1, 8, 16, 32, 64, 128, 256, 320, 512}) EXPECT_EQ(vllm_rank_warning(r), "") << r;
  EXPECT_NE(vllm_rank_warning(4).find("serves it with --max-lora-rank 8 or more (its default, 16, does)"),
            std::string::npos) << vllm_rank_warning(4);
  EXPECT_NE(vllm_rank_warning(300).find("--max-lora-rank 320 or more (its default, 16, is too small)"), std::string::npos);
  EXPECT_NE(vllm_rank_warning(1024).find("cannot serve"), std::string::npos);
  EXPECT_EQ(vllm_rank_warning(2).rfind("warning: LoRA rank 2 ", 0), 0u) << vllm_rank_warning(2);
}

TEST(Lora, GradientsFlowOnlyToTheAdapters) {
  auto model = lora_random_model("qwen3");
  attach_lora(*model, lora_section(4, {kAllLinear}), 3);
  randomise_b(*model, 9);  // with B = 0, A's gradient would be 0
  const auto batch = random_batch(101);
  (-model->next_token_logprobs(batch.ids, batch.mask).sum()).backward();
  for (const auto& p : model->named_parameters()) {
    EXPECT_FALSE(p.value().requires_grad()) << p.key() << " is frozen";
    EXPECT_FALSE(p.value().grad().defined()) << p.key() << " has a gradient";
  }
  for (const auto& [name, t] : lora_parameters(*model)) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_GT(t.grad().abs().max().item<double>(), 0.0) << name;
  }
  // Detached, the base trains again.
  detach_lora(*model);
  for (const auto& p : model->parameters()) EXPECT_TRUE(p.requires_grad());
  EXPECT_FALSE(has_lora(*model));
}

// With dropout, the recomputation in backward must drop what the forward dropped.
TEST(Lora, GradientCheckpointingGivesTheSameAdapterGradientsWithDropout) {
  for (const double dropout : {0.0, 0.3}) {
    auto model = lora_random_model("llama");
    attach_lora(*model, lora_section(4, {"q_proj", "v_proj", "o_proj", "down_proj"}, 8.0, dropout), 5);
    randomise_b(*model, 6);
    model->train();
    const auto batch = random_batch(101);
    set_lora_dropout_rows(*model, 3, {5, 2});  // the masks are a function of these: nothing to replay
    auto run = [&](bool checkpoint) {
      model->set_gradient_checkpointing(checkpoint);
      zero_adapter_grads(*model);
      auto loss = -model->next_token_logprobs(batch.ids, batch.mask).sum();
      loss.backward();
      return std::make_pair(loss.item<double>(), adapter_grads(*model));
    };
    const auto plain = run(false), checkpointed = run(true);
    EXPECT_EQ(plain.first, checkpointed.first) << "dropout " << dropout;
    for (const auto& [name, g] : plain.second) {
      ASSERT_TRUE(g.defined()) << name;
      ASSERT_TRUE(checkpointed.second.at(name).defined()) << name << ": no gradient through checkpointed layers";
      EXPECT_GT(g.abs().max().item<double>(), 0.0) << name;
      EXPECT_TRUE(torch::allclose(g, checkpointed.second.at(name), 1e-5, 1e-7)) << name << " dropout " << dropout;
    }
  }
}

TEST(Lora, DropoutActsInTrainingOnlyAndIsSeeded) {
  auto make = [](uint64_t seed) {
    auto model = lora_random_model("llama");
    attach_lora(*model, lora_section(4, {kAllLinear}, 16.0, 0.5), seed);
    randomise_b(*model, 2);
    return model;
  };
  auto model = make(1), twin = make(1);
  const auto batch = random_batch(101);
  torch::NoGradGuard no_grad;
  model->eval();
  auto eval1 = model->next_token_logprobs(batch.ids, batch.mask);
  EXPECT_TRUE(torch::equal(eval1, model->next_token_logprobs(batch.ids, batch.mask))) << "no dropout in eval mode";
  model->train();
  twin->train();
  auto train1 = model->next_token_logprobs(batch.ids, batch.mask);
  EXPECT_GT((train1 - eval1).abs().max().item<double>(), 1e-3) << "dropout acts in training";
  EXPECT_TRUE(torch::equal(train1, twin->next_token_logprobs(batch.ids, batch.mask))) << "seeded";
  EXPECT_TRUE(torch::equal(train1, model->next_token_logprobs(batch.ids, batch.mask)))
      << "a pure function of (seed, step, samples)";
  set_lora_dropout_rows(*model, 1, {0, 1});
  EXPECT_GT((train1 - model->next_token_logprobs(batch.ids, batch.mask)).abs().max().item<double>(), 1e-3)
      << "fresh masks at another step";
  set_lora_dropout_rows(*model, 0, {0, 1});
  EXPECT_TRUE(torch::equal(train1, model->next_token_logprobs(batch.ids, batch.mask)))
      << "rows 0..B-1 of step 0 by default";
  set_lora_dropout_rows(*model, 0, {0, 1, 2});
  EXPECT_TRUE(throws_error([&] { model->next_token_logprobs(batch.ids, batch.mask); },
                           "the forward has 2 rows and set_lora_dropout_rows named 3 samples"));
  clear_lora_dropout_rows(*model);
  EXPECT_TRUE(torch::equal(train1, model->next_token_logprobs(batch.ids, batch.mask)));
  {
    torch::InferenceMode inference;  // the counterfactual pass, scoring, validation: no dropout
    EXPECT_TRUE(torch::equal(eval1, model->next_token_logprobs(batch.ids, batch.mask)));
  }
  // p counts in steps of 2^-16: below 2^-17 nothing is dropped (only scaled by 1 / (1 - p)).
  auto tiny = lora_random_model("llama");
  attach_lora(*tiny, lora_section(4, {kAllLinear}, 16.0, 1e-6), 1);
  randomise_b(*tiny, 2);
  tiny->train();
  EXPECT_TRUE(torch::allclose(tiny->next_token_logprobs(batch.ids, batch.mask), eval1, 1e-4, 1e-5));
}

// A sample's mask follows the sample: in any row, in any batch, with any right padding, so several
// ranks and any micro-batch size drop alike. The keep rate is 1 - p.
TEST(Lora, DropoutMasksFollowTheSampleNotTheRowOrPadding) {
  auto model = lora_random_model("llama");
  attach_lora(*model, lora_section(4, {kAllLinear}, 16.0, 0.4), 9);
  randomise_b(*model, 2);
  model->train();
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(4);
  auto ids = torch::randint(3, 101, {3, 9}, generator, torch::kLong);
  auto mask = torch::ones({3, 9}, torch::kLong);
  set_lora_dropout_rows(*model, 5, {11, 4, 30});
  const auto together = model->next_token_logprobs(ids, mask);  // [3, 8]
  // Row 1 alone, then rows 2 and 0 swapped, then row 0 right-padded to 14 positions.
  set_lora_dropout_rows(*model, 5, {4});
  EXPECT_TRUE(torch::allclose(model->next_token_logprobs(ids.slice(0, 1, 2), mask.slice(0, 1, 2)),
                              together.slice(0, 1, 2), 1e-5, 1e-6));
  set_lora_dropout_rows(*model, 5, {30, 11});
  const auto swapped = model->next_token_logprobs(torch::stack({ids[2], ids[0]}), torch::stack({mask[2], mask[0]}));
  EXPECT_TRUE(torch::allclose(swapped[0], together[2], 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(swapped[1], together[0], 1e-5, 1e-6));
  set_lora_dropout_rows(*model, 5, {11});
  auto padded_ids = torch::cat({ids.slice(0, 0, 1), torch::zeros({1, 5}, torch::kLong)}, 1);
  auto padded_mask = torch::cat({mask.slice(0, 0, 1), torch::zeros({1, 5}, torch::kLong)}, 1);
  const auto padded = model->next_token_logprobs(padded_ids, padded_mask);
  EXPECT_TRUE(torch::allclose(padded.slice(1, 0, 8), together.slice(0, 0, 1), 1e-5, 1e-6));
  set_lora_dropout_rows(*model, 5, {12, 4, 30});
  EXPECT_GT((model->next_token_logprobs(ids, mask) - together).slice(0, 0, 1).abs().max().item<double>(), 1e-3)
      << "another sample, another mask";
  clear_lora_dropout_rows(*model);

  // The keep rate: with A's first row and B's first column ones (scaling undone) and x = 1, the
  // adapter adds the kept inputs of each token times 1 / (1 - p).
  auto& q = model->model->layers[0]->as<DecoderLayer>()->self_attn->q_proj;
  auto A = lora_parameters(*model)[0].second, B = lora_parameters(*model)[1].second;
  const int64_t in = A.size(1);
  A.zero_().select(0, 0).fill_(1.0);
  B.zero_().select(1, 0).fill_(4.0 / 16.0);  // 1 / scaling (alpha 16, rank 4)
  auto x = torch::ones({2, 500, in});
  const auto kept = q->adapter->forward(x, torch::zeros({2, 500, B.size(0)}), true).select(2, 0) * (1.0 - 0.4);
  EXPECT_TRUE(torch::allclose(kept, kept.round(), 0, 1e-3)) << "kept inputs are counted whole";
  const double rate = kept.sum().item<double>() / static_cast<double>(2 * 500 * in);
  EXPECT_NEAR(rate, 0.6, 0.01) << "keep rate 1 - p";
  EXPECT_FALSE(torch::equal(kept[0], kept[1])) << "rows 0 and 1 are different samples";
}

TEST(Lora, Bfloat16BaseWithFloat32AdaptersFollowsFloat32) {
  auto reference = lora_random_model("llama", 7, 0.05);
  auto half = lora_random_model("llama", 7, 0.05);
  half->to(torch::kBFloat16);
  const auto lora = lora_section(4, {"q_proj", "v_proj", "up_proj"});
  attach_lora(*reference, lora, 4);
  attach_lora(*half, lora, 4);
  randomise_b(*reference, 8);
  randomise_b(*half, 8);
  for (const auto& [name, t] : lora_parameters(*half)) EXPECT_EQ(t.scalar_type(), torch::kFloat32) << name;
  const auto batch = random_batch(101);
  auto lp_ref = reference->next_token_logprobs(batch.ids, batch.mask);
  auto lp_half = half->next_token_logprobs(batch.ids, batch.mask);
  const auto real = batch.mask.slice(1, 1, batch.mask.size(1)).to(torch::kBool);
  EXPECT_LT((lp_half - lp_ref).masked_select(real).abs().max().item<double>(), 0.05);
  (-lp_ref.sum()).backward();
  (-lp_half.sum()).backward();
  const auto ref_grads = adapter_grads(*reference);
  for (const auto& [name, g] : adapter_grads(*half)) {
    ASSERT_TRUE(g.defined()) << name;
    EXPECT_EQ(g.scalar_type(), torch::kFloat32) << name;
    const double scale = ref_grads.at(name).abs().max().item<double>();
    EXPECT_LT((g - ref_grads.at(name)).abs().max().item<double>(), 0.1 * scale) << name;
  }
  // Merging rounds once into the bf16 weights; the result stays close to the unmerged model.
  torch::NoGradGuard no_grad;
  merge_lora(*half);
  EXPECT_LT((half->next_token_logprobs(batch.ids, batch.mask) - lp_half).masked_select(real).abs().max().item<double>(),
            0.05);
}

// In float64 (adapters follow the base there), where the two paths agree to rounding.
TEST(Lora, FusedKernelsAndCompositionGiveTheSameAdapterGradients) {
  auto model = lora_random_model("qwen3");
  model->to(torch::kFloat64);
  attach_lora(*model, lora_section(4, {kAllLinear}), 3);
  randomise_b(*model, 4);
  const auto batch = random_batch(101);
  auto run = [&](bool fused) {
    set_fused_kernels_enabled(fused);
    zero_adapter_grads(*model);
    (-model->next_token_logprobs(batch.ids, batch.mask).sum()).backward();
    return adapter_grads(*model);
  };
  const auto fused = run(true), plain = run(false);
  set_fused_kernels_enabled(true);
  for (const auto& [name, g] : fused) {
    EXPECT_EQ(g.scalar_type(), torch::kFloat64) << name;
    EXPECT_GT(g.abs().max().item<double>(), 0.0) << name;
    EXPECT_TRUE(torch::allclose(g, plain.at(name), 1e-9, 1e-11)) << name;
  }
}

TEST(Lora, UseRsloraScalesByAlphaOverSqrtRank) {
  auto model = lora_random_model("llama");
  auto lora = lora_section(4, {"v_proj"}, 6.0);
  lora.use_rslora = true;
  attach_lora(*model, lora, 1);
  randomise_b(*model, 2);
  const auto params = lora_parameters(*model);
  const auto w = model->model->layers[0]->as<DecoderLayer>()->self_attn->v_proj->weight.clone();
  merge_lora(*model);
  const auto merged = model->model->layers[0]->as<DecoderLayer>()->self_attn->v_proj->weight;
  const auto want = w + (6.0 / 2.0) * torch::matmul(params[1].second, params[0].second);  // sqrt(4) = 2
  EXPECT_TRUE(torch::allclose(merged, want, 1e-5, 1e-6));
}

// ---------------------------------------------------------------------------------------------
// PEFT files.

TEST(LoraFiles, SaveWritesPeftsLayoutAndLoadRestoresTheAdaptersBitForBit) {
  auto model = lora_random_model("qwen3");
  attach_lora(*model, lora_section(4, {"v_proj", kAllLinear}, 8.0, 0.05), 3);
  randomise_b(*model, 4);
  ScratchDir dir("lora");
  const fs::path out = dir / "adapter";
  save_lora_adapter(*model, out.string(), "Qwen/Qwen3-0.6B");

  const auto config = nlohmann::json::parse(testing_util::read_file(out / "adapter_config.json"));
  const std::vector<std::string> keys = {
      "alpha_pattern", "auto_mapping", "base_model_name_or_path", "bias", "fan_in_fan_out", "inference_mode",
      "init_lora_weights", "layer_replication", "layers_pattern", "layers_to_transform", "loftq_config",
      "lora_alpha", "lora_dropout", "megatron_config", "megatron_core", "modules_to_save", "peft_type", "r",
      "rank_pattern", "revision", "target_modules", "task_type", "use_dora", "use_rslora"};
  std::vector<std::string> written;
  for (const auto& item : config.items()) written.push_back(item.key());
  EXPECT_EQ(written, keys);
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["task_type"], "CAUSAL_LM");
  EXPECT_EQ(config["r"], 4);
  EXPECT_TRUE(config["lora_alpha"].is_number_integer());
  EXPECT_EQ(config["lora_alpha"], 8);
  EXPECT_DOUBLE_EQ(config["lora_dropout"].get<double>(), 0.05);
  EXPECT_EQ(config["bias"], "none");
  EXPECT_EQ(config["base_model_name_or_path"], "Qwen/Qwen3-0.6B");
  EXPECT_EQ(config["inference_mode"], true);
  EXPECT_EQ(config["target_modules"],
            nlohmann::json({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}));

  SafetensorsFile file((out / "adapter_model.safetensors").string());
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  const auto params = lora_parameters(*model);
  ASSERT_EQ(file.entries().size(), params.size());
  for (const auto& [name, t] : params) {
    const TensorEntry* entry = file.find(name);
    ASSERT_NE(entry, nullptr) << name;
    EXPECT_EQ(entry->dtype, "F32");
    EXPECT_EQ(c10::IntArrayRef(entry->shape), t.sizes()) << name;
  }

  auto fresh = lora_random_model("qwen3");
  const LoraSection read = load_lora_adapter(*fresh, out.string());
  EXPECT_EQ(read.rank, 4);
  EXPECT_EQ(read.alpha, 8.0);
  EXPECT_EQ(read.dropout, 0.05);
  const auto loaded = lora_parameters(*fresh);
  ASSERT_EQ(loaded.size(), params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(loaded[i].first, params[i].first);
    EXPECT_TRUE(torch::equal(loaded[i].second, params[i].second)) << params[i].first;
    EXPECT_TRUE(loaded[i].second.requires_grad());
  }
  EXPECT_TRUE(throws_error([&] { load_lora_adapter(*fresh, out.string()); }, "has LoRA adapters already"));
}

// The reference script reads what percetrain writes: PEFT's key set, names, shapes, dtype and
// metadata, and gives the log-probs percetrain computes with it.
TEST(LoraFiles, TheReferenceReadsAnAdapterPercetrainWrote) {
  if (testing_util::run_command("/usr/bin/python3 -c 'import torch, numpy'").status != 0)
    GTEST_SKIP() << "/usr/bin/python3 with torch and numpy is absent (apt-get install python3-torch python3-numpy)";
  const fs::path base = testing_util::golden_dir() / "models" / "llama";
  LoadedModel loaded = load_causal_lm(base.string(), torch::kCPU, torch::kFloat32);
  attach_lora(*loaded.model, lora_section(3, {"k_proj", "o_proj", "gate_proj"}, 5.0), 12);
  randomise_b(*loaded.model, 13);
  ScratchDir dir("lora");
  save_lora_adapter(*loaded.model, (dir / "adapter").string(), base.string());
  testing_util::expect_reference_reads_adapter(*loaded.model, dir / "adapter", base, 2 * 3 * 2);
}

// Bad adapters: each a copy of the golden llama adapter with one thing wrong.
class BadAdapter : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = load_causal_lm((testing_util::golden_dir() / "models" / "llama").string(), torch::kCPU, torch::kFloat32);
    const fs::path source = testing_util::golden_dir() / "models" / "llama" / "lora";
    config_ = nlohmann::json::parse(testing_util::read_file(source / "adapter_config.json"));
    SafetensorsFile file((source / "adapter_model.safetensors").string());
    for (const auto& entry : file.entries()) tensors_.emplace_back(entry.name, file.load(entry.name));
  }
  std::string write() {
    const fs::path out = dir_ / "adapter";
    fs::create_directories(out);
    testing_util::write_file(out / "adapter_config.json", config_.dump(2));
    write_safetensors((out / "adapter_model.safetensors").string(), tensors_, {{"format", "pt"}});
    return out.string();
  }
  ::testing::AssertionResult rejected(const std::string& needle) {
    const std::string dir = write();
    auto result = throws_error([&] { load_lora_adapter(*base_.model, dir); }, needle);
    if (result && has_lora(*base_.model)) return ::testing::AssertionFailure() << "adapters attached after an error";
    return result;
  }
  torch::Tensor& tensor(const std::string& suffix) {
    for (auto& [name, t] : tensors_)
      if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) return t;
    throw std::runtime_error("no tensor " + suffix);
  }
  void rename(const std::string& from, const std::string& to) {
    for (auto& [name, t] : tensors_)
      if (name == from) name = to;
  }
  void erase(const std::string& name) {
    tensors_.erase(std::remove_if(tensors_.begin(), tensors_.end(), [&](const auto& p) { return p.first == name; }),
                   tensors_.end());
  }

  LoadedModel base_;
  nlohmann::json config_;
  std::vector<std::pair<std::string, at::Tensor>> tensors_;
  ScratchDir dir_{"lora-bad"};
};

const std::string kQ0 = "base_model.model.model.layers.0.self_attn.q_proj";

TEST_F(BadAdapter, TheUnchangedCopyLoads) {
  const std::string dir = write();
  EXPECT_NO_THROW(load_lora_adapter(*base_.model, dir));
  EXPECT_TRUE(has_lora(*base_.model));
}

TEST_F(BadAdapter, ExtraKeysOfNewerPeftAreAccepted) {
  config_["exclude_modules"] = nullptr;
  config_["lora_bias"] = false;
  config_["eva_config"] = nullptr;
  config_["corda_config"] = nullptr;
  config_["trainable_token_indices"] = nullptr;
  config_["peft_version"] = "0.18.1";
  config_["target_parameters"] = nullptr;
  config_["use_qalora"] = false;
  config_["qalora_group_size"] = 16;
  config_["alora_invocation_tokens"] = nullptr;
  config_["arrow_config"] = nullptr;
  config_["ensure_weight_tying"] = false;
  const std::string dir = write();
  EXPECT_NO_THROW(load_lora_adapter(*base_.model, dir));
}

TEST_F(BadAdapter, UnknownModuleName) {
  rename(kQ0 + ".lora_A.weight", "base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight");
  EXPECT_TRUE(rejected("adapts 'model.layers.0.self_attn.qkv_proj', which is not a projection of the base model"));
}

TEST_F(BadAdapter, UnknownTargetModuleInTheConfig) {
  config_["target_modules"].push_back("out_proj");
  EXPECT_TRUE(rejected("target_modules: 'out_proj' is not a projection percetrain can adapt"));
}

TEST_F(BadAdapter, TensorThatIsNotALoraWeight) {
  tensors_.emplace_back("base_model.model.lm_head.weight", torch::zeros({96, 32}));
  EXPECT_TRUE(rejected("tensor 'base_model.model.lm_head.weight' is not a LoRA weight"));
}

TEST_F(BadAdapter, WrongShape) {
  tensor("layers.1.mlp.down_proj.lora_B.weight") = torch::zeros({31, 4});
  EXPECT_TRUE(rejected("is [31, 4], but the base's model.layers.1.mlp.down_proj needs [32, 4]"));
}

TEST_F(BadAdapter, RankThatDoesNotMatchTheConfig) {
  config_["r"] = 8;
  EXPECT_TRUE(rejected("has rank 4, but adapter_config.json says r = 8"));
}

TEST_F(BadAdapter, MissingLoraA) {
  erase(kQ0 + ".lora_A.weight");
  EXPECT_TRUE(rejected("missing lora_A for model.layers.0.self_attn.q_proj"));
}

TEST_F(BadAdapter, MissingLoraB) {
  erase("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight");
  EXPECT_TRUE(rejected("missing lora_B for model.layers.1.self_attn.v_proj"));
}

TEST_F(BadAdapter, TargetedModuleWithoutTensors) {
  config_["target_modules"].push_back("k_proj");
  EXPECT_TRUE(rejected("no lora_A or lora_B for model.layers.0.self_attn.k_proj, which target_modules names"));
}

TEST_F(BadAdapter, BaseOfAnotherShape) {
  // The llama adapter on the qwen3 golden base: q_proj there is [64, 32], not [32, 32].
  auto qwen3 = load_causal_lm((testing_util::golden_dir() / "models" / "qwen3").string(), torch::kCPU, torch::kFloat32);
  const std::string dir = (testing_util::golden_dir() / "models" / "llama" / "lora").string();
  EXPECT_TRUE(throws_error([&] { load_lora_adapter(*qwen3.model, dir); },
                           "(is the adapter for this base model (qwen3, 2 layers, hidden size 32)?)"));
}

TEST_F(BadAdapter, BaseWithFewerLayers) {
  rename(kQ0 + ".lora_A.weight", "base_model.model.model.layers.5.self_attn.q_proj.lora_A.weight");
  EXPECT_TRUE(rejected("adapts 'model.layers.5.self_attn.q_proj', which is not a projection of the base model (is "
                       "the adapter for this base model (llama, 2 layers"));
}

TEST_F(BadAdapter, NotLora) {
  config_["peft_type"] = "IA3";
  EXPECT_TRUE(rejected("adapter_config.json: peft_type: \"IA3\" is not LORA"));
}

TEST_F(BadAdapter, MissingPeftType) {
  config_.erase("peft_type");
  EXPECT_TRUE(rejected("adapter_config.json: peft_type: is missing"));
}

TEST_F(BadAdapter, BiasOtherThanNone) {
  config_["bias"] = "lora_only";
  EXPECT_TRUE(rejected("adapter_config.json: bias: \"lora_only\" is not supported"));
}

TEST_F(BadAdapter, Dora) {
  config_["use_dora"] = true;
  EXPECT_TRUE(rejected("adapter_config.json: use_dora: DoRA adapters are not supported"));
}

TEST_F(BadAdapter, ModulesToSave) {
  config_["modules_to_save"] = {"lm_head"};
  EXPECT_TRUE(rejected("adapter_config.json: modules_to_save: full module copies ([\"lm_head\"]) are not supported"));
}

TEST_F(BadAdapter, PerModuleRanks) {
  config_["rank_pattern"] = {{"q_proj", 8}};
  EXPECT_TRUE(rejected("adapter_config.json: rank_pattern: per-module ranks and alphas are not supported"));
}

TEST_F(BadAdapter, BinWeightsOnly) {
  const std::string dir = write();
  fs::rename(fs::path(dir) / "adapter_model.safetensors", fs::path(dir) / "adapter_model.bin");
  EXPECT_TRUE(throws_error([&] { load_lora_adapter(*base_.model, dir); }, "PyTorch .bin adapters are not read"));
}

// ---------------------------------------------------------------------------------------------
// merge-adapter and logprobs --adapter, through the binary.
TEST(MergeAdapterCommand, MergedFolderScoresAsTheUnmergedAdapter) {
  ScratchDir dir("merge");
  const std::string base = (dir / "base").string(), adapter = (dir / "adapter").string(),
                    merged = (dir / "merged").string();
  write_random_model("llama", "tiny", (testing_util::source_dir() / "data" / "tokenizer").string(), base, 3);
  {
    LoadedModel loaded = load_causal_lm(base, torch::kCPU, torch::kFloat32);
    attach_lora(*loaded.model, lora_section(4, {kAllLinear}, 8.0), 1);
    randomise_b(*loaded.model, 2, 0.05);
    save_lora_adapter(*loaded.model, adapter, base);
  }
  auto r = testing_util::run_percetrain("merge-adapter --model " + base + " --adapter " + adapter + " --out " + merged);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("(r 4, alpha 8, 14 projections)"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(fs::path(merged) / "tokenizer.model")) << "the tokenizer comes along";

  const std::string text = " --text 'The coffee maker brews a strong cup.' --json";
  auto with_adapter = testing_util::run_percetrain("logprobs --model " + base + " --adapter " + adapter + text, false);
  auto from_merged = testing_util::run_percetrain("logprobs --model " + merged + text, false);
  auto plain = testing_util::run_percetrain("logprobs --model " + base + text, false);
  ASSERT_EQ(with_adapter.status, 0) << with_adapter.output;
  ASSERT_EQ(from_merged.status, 0) << from_merged.output;
  const auto a = nlohmann::json::parse(with_adapter.output), m = nlohmann::json::parse(from_merged.output),
             p = nlohmann::json::parse(plain.output);
  ASSERT_EQ(a["tokens"].size(), m["tokens"].size());
  double err = 0.0, moved = 0.0;
  for (size_t t = 1; t < a["tokens"].size(); ++t) {
    err = std::max(err, std::abs(a["tokens"][t]["logprob"].get<double>() - m["tokens"][t]["logprob"].get<double>()));
    moved = std::max(moved, std::abs(a["tokens"][t]["logprob"].get<double>() - p["tokens"][t]["logprob"].get<double>()));
  }
  EXPECT_LT(err, 1e-5);
  EXPECT_GT(moved, 1e-3) << "the adapter changes the scores";

  auto inside = testing_util::run_percetrain("merge-adapter --model " + base + " --adapter " + adapter + " --out " +
                                             base + "/merged");
  EXPECT_EQ(inside.status, 2);
  EXPECT_NE(inside.output.find("is inside --model"), std::string::npos) << inside.output;
  EXPECT_FALSE(fs::exists(fs::path(base) / "merged"));
}

// ---------------------------------------------------------------------------------------------
// Non-finite values: an absurd lora_alpha or NaN in an adapter or a model gave NaN log-probs,
// NaN merged weights and garbage text with rc 0 (and hung score's AUROC).
namespace nonfinite {

const std::string kText = " --text 'The coffee maker brews a strong cup.'";

std::string score_args(const std::string& model, const std::string& out) {
  return "score --config " + (testing_util::source_dir() / "data" / "demo" / "job.json").string() +
         " --set model.path=" + model + " --data " + (testing_util::source_dir() / "data" / "demo" / "valid.jsonl").string() +
         " --limit 2 --quiet --out " + out;
}

// The last non-empty line of the output: the error, which must say `needle`.
::testing::AssertionResult fails_with(const testing_util::CommandResult& r, const std::string& needle) {
  if (r.status != 1) return ::testing::AssertionFailure() << "rc " << r.status << ": " << r.output;
  std::string text = r.output;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  const std::string last = text.substr(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
  if (last.find(needle) == std::string::npos)
    return ::testing::AssertionFailure() << "the last line lacks \"" << needle << "\": " << r.output;
  return ::testing::AssertionSuccess();
}

TEST(NonFinite, AbsurdAlphaOrANanInLoraBIsRefusedWhereverTheAdapterIsRead) {
  ScratchDir dir("nonfinite-adapter");
  const std::string base = (dir / "base").string();
  write_random_model("llama", "tiny", (testing_util::source_dir() / "data" / "tokenizer").string(), base, 3);
  const std::string huge_alpha = (dir / "alpha").string(), nan_b = (dir / "nan").string();
  {
    LoadedModel loaded = load_causal_lm(base, torch::kCPU, torch::kFloat32);
    attach_lora(*loaded.model, lora_section(4, {kAllLinear}, 1e308), 1);
    randomise_b(*loaded.model, 2, 0.05);
    save_lora_adapter(*loaded.model, huge_alpha, base);
  }
  {
    LoadedModel loaded = load_causal_lm(base, torch::kCPU, torch::kFloat32);
    attach_lora(*loaded.model, lora_section(4, {kAllLinear}, 8.0), 1);
    randomise_b(*loaded.model, 2, 0.05);
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : lora_parameters(*loaded.model))
      if (name.find("layers.1.mlp.down_proj.lora_B") != std::string::npos) t[3][1] = NAN;
    save_lora_adapter(*loaded.model, nan_b, base);
  }
  const std::pair<std::string, std::string> cases[] = {
      {huge_alpha, "lora_alpha: must be a positive number of at most 1e6"},
      {nan_b, "model.layers.1.mlp.down_proj.lora_B.weight' holds non-finite values"}};
  for (const auto& [adapter, message] : cases) {
    const std::string merged = (dir / "merged").string();
    EXPECT_TRUE(fails_with(testing_util::run_percetrain("logprobs --model " + base + " --adapter " + adapter + kText),
                           message));
    EXPECT_TRUE(fails_with(testing_util::run_percetrain("merge-adapter --model " + base + " --adapter " + adapter +
                                                        " --out " + merged),
                           message));
    EXPECT_FALSE(fs::exists(merged)) << "merge-adapter wrote a model";
    const std::string scores = (dir / "scores.jsonl").string();
    EXPECT_TRUE(fails_with(testing_util::run_percetrain(score_args(base, scores) + " --adapter " + adapter), message));
    EXPECT_FALSE(fs::exists(scores));
  }
}

TEST(NonFinite, ANanModelWeightStopsScoreLogprobsGenerateAndMerge) {
  ScratchDir dir("nonfinite-model");
  const std::string base = (dir / "base").string(), adapter = (dir / "adapter").string();
  write_random_model("llama", "tiny", (testing_util::source_dir() / "data" / "tokenizer").string(), base, 3);
  {
    LoadedModel loaded = load_causal_lm(base, torch::kCPU, torch::kFloat32);
    attach_lora(*loaded.model, lora_section(4, {kAllLinear}, 8.0), 1);
    randomise_b(*loaded.model, 2, 0.05);
    save_lora_adapter(*loaded.model, adapter, base);
  }
  {  // one NaN in the final norm: every hidden state, so every log-prob, is NaN
    const std::string file = base + "/model.safetensors";
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    {
      SafetensorsFile in(file);
      for (const auto& e : in.entries()) tensors.emplace_back(e.name, in.load(e.name).clone());
    }
    for (auto& [name, t] : tensors)
      if (name == "model.norm.weight") t[0] = NAN;
    write_safetensors(file, tensors, {{"format", "pt"}});
  }
  const std::string message = "non-finite log-probabilities from model " + base;
  EXPECT_TRUE(fails_with(testing_util::run_percetrain("logprobs --model " + base + kText), message));
  EXPECT_TRUE(fails_with(testing_util::run_percetrain("logprobs --model " + base + " --adapter " + adapter + kText),
                         message + " + adapter " + adapter));
  const std::string scores = (dir / "scores.jsonl").string();
  EXPECT_TRUE(fails_with(testing_util::run_percetrain(score_args(base, scores)), message));
  EXPECT_FALSE(fs::exists(scores));
  const std::string predictions = (dir / "predictions.jsonl").string();
  EXPECT_TRUE(fails_with(
      testing_util::run_percetrain("generate --config " + (testing_util::source_dir() / "data" / "demo" / "job.json").string() +
                                   " --set model.path=" + base + " --set generate.max_new_tokens=4 --data " +
                                   (testing_util::source_dir() / "data" / "demo" / "valid.jsonl").string() +
                                   " --limit 1 --out " + predictions),
      message));
  EXPECT_FALSE(fs::exists(predictions));
  const std::string merged = (dir / "merged").string();
  EXPECT_TRUE(fails_with(
      testing_util::run_percetrain("merge-adapter --model " + base + " --adapter " + adapter + " --out " + merged),
      "holds non-finite values"));
  EXPECT_FALSE(fs::exists(merged)) << "merge-adapter wrote a model";
}

}  // namespace nonfinite

}  // namespace
