// The decoder against golden outputs of an independent reference, plus padding invariance,
// the chunked log-prob gradient, and save/load round trips.
#include <torch/torch.h>

#include <filesystem>

#include "percetrain/io/safetensors.hpp"
#include "percetrain/model/fused_ops.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace percetrain;
using percetrain::testing_util::ScratchDir;

namespace {

ModelConfig small_config(const std::string& arch) {
  ModelConfig c = preset_model_config(arch, "tiny", 101);
  c.num_hidden_layers = 2;
  return c;
}

CausalLM random_model(const std::string& arch, uint64_t seed = 7, double std = 0.2) {
  CausalLM model(small_config(arch));
  init_weights(*model, seed, std);
  // Norm weights away from 1 so that a misplaced norm changes the result.
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters())
    if (p.key().find("norm") != std::string::npos) p.value().uniform_(0.5, 1.5);
  return model;
}

// ---------------------------------------------------------------------------------------------
// Golden tests: tests/golden/models/<case>/ holds a model folder and golden.safetensors made by
// scripts/make_model_goldens.py (plain PyTorch, float64, following the Hugging Face modelling
// files). See tests/golden/models/README.md.
class GoldenModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenModelTest, LogprobsAndGradientsMatchReference) {
  const fs::path dir = testing_util::golden_dir() / "models" / GetParam();
  ASSERT_TRUE(fs::exists(dir / "golden.safetensors")) << dir;
  LoadedModel loaded = load_causal_lm(dir.string(), torch::kCPU, torch::kFloat32);
  SafetensorsFile golden((dir / "golden.safetensors").string());
  auto ids = golden.load("input_ids", torch::kLong);
  auto mask = golden.load("attention_mask", torch::kLong);
  auto positions = golden.load("position_ids", torch::kLong);
  auto expected = golden.load("logprobs", torch::kDouble);
  auto expected_alone = golden.load("logprobs_unpadded", torch::kDouble);
  const int64_t T = ids.size(1);

  EXPECT_TRUE(torch::equal(positions, position_ids_from_mask(mask)))
      << "position ids from the mask follow Hugging Face's convention";

  auto hidden = loaded.model->hidden_states(ids, mask, positions);
  auto real = mask.to(torch::kBool);
  auto select = real.slice(1, 0, T - 1).logical_and(real.slice(1, 1, T));
  auto logprobs = loaded.model->target_logprobs(hidden.slice(1, 0, T - 1), ids.slice(1, 1, T), select, 5);
  auto got = logprobs.to(torch::kDouble);
  const double max_err = (got - expected).abs().max().item<double>();
  EXPECT_LT(max_err, 2e-5) << GetParam() << ": max |logprob - golden| = " << max_err;
  EXPECT_LT((got - expected_alone).abs().max().item<double>(), 2e-5) << "padding changed the result";

  // Gradient of the mean negative log-likelihood over real targets.
  auto loss = -logprobs.sum() / select.sum();
  EXPECT_NEAR(loss.item<double>(), golden.load("loss", torch::kDouble).item<double>(), 1e-5);
  loss.backward();
  auto params = loaded.model->named_parameters();
  int checked = 0;
  for (const auto& entry : golden.entries()) {
    if (entry.name.rfind("grad.", 0) != 0) continue;
    const std::string name = entry.name.substr(5);
    auto* param = params.find(name);
    ASSERT_NE(param, nullptr) << name;
    auto want = golden.load(entry.name, torch::kDouble);
    auto have = param->grad().to(torch::kDouble);
    const double scale = want.abs().max().item<double>();
    const double err = (have - want).abs().max().item<double>();
    EXPECT_LT(err, 1e-4 * scale + 1e-7) << GetParam() << " grad " << name << " max err " << err
                                        << " (max |grad| " << scale << ")";
    ++checked;
  }
  EXPECT_GE(checked, 5);
}

INSTANTIATE_TEST_SUITE_P(Architectures, GoldenModelTest,
                         ::testing::Values("llama", "llama3", "mistral", "qwen2", "qwen3"));

// ---------------------------------------------------------------------------------------------
class ArchTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ArchTest, SequenceScoresTheSameAloneAndInLeftOrRightPaddedBatch) {
  auto model = random_model(GetParam());
  torch::NoGradGuard no_grad;
  auto seq = torch::randint(3, 101, {1, 9}, torch::kLong);
  auto alone = model->next_token_logprobs(seq, torch::ones({1, 9}, torch::kLong));
  ASSERT_GT(alone.abs().sum().item<double>(), 0.0);

  const int64_t T = 14, pad = T - 9;
  auto other = torch::randint(3, 101, {1, T}, torch::kLong);
  // Row 0: left padded; row 1: right padded; row 2: an unrelated full-length sequence.
  auto ids = torch::zeros({3, T}, torch::kLong);
  auto mask = torch::zeros({3, T}, torch::kLong);
  ids[0].slice(0, pad, T).copy_(seq[0]);
  mask[0].slice(0, pad, T).fill_(1);
  ids[1].slice(0, 0, 9).copy_(seq[0]);
  mask[1].slice(0, 0, 9).fill_(1);
  ids[2].copy_(other[0]);
  mask[2].fill_(1);
  auto batch = model->next_token_logprobs(ids, mask);
  EXPECT_TRUE(batch.isfinite().all().item<bool>());
  EXPECT_TRUE(torch::allclose(batch[0].slice(0, pad, T - 1), alone[0], 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(batch[1].slice(0, 0, 8), alone[0], 1e-5, 1e-5));
  EXPECT_EQ(batch[0].slice(0, 0, pad).abs().sum().item<double>(), 0.0) << "padding gets no score";
}

// Training and scoring batches pad on the right, where LibTorch 2.x runs attention without a mask
// tensor (SDPA's is_causal; the decoder's causal_mask_is_exact). The same rows inside a batch that
// also holds a left-padded row take the masked path: both must give the same log-probs and the
// same gradients (the left-padded row is left out of the loss). On 1.13 both take the mask.
TEST_P(ArchTest, RightPaddedBatchGivesTheMaskedResultInValueAndGradient) {
  auto model = random_model(GetParam());
  const int64_t T = 12;
  auto ids = torch::randint(3, 101, {3, T}, torch::kLong);
  auto mask = torch::ones({3, T}, torch::kLong);
  mask[0].slice(0, 7, T).fill_(0);  // row 0 right padded, row 1 full
  mask[2].slice(0, 0, 5).fill_(0);  // row 2 left padded: forces the mask
  auto run = [&](int64_t rows) {
    model->zero_grad();
    auto lp = model->next_token_logprobs(ids.slice(0, 0, rows), mask.slice(0, 0, rows));
    lp.slice(0, 0, 2).sum().backward();
    std::vector<torch::Tensor> grads;
    for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
    return std::make_pair(lp.slice(0, 0, 2).detach(), grads);
  };
  for (const bool checkpointing : {false, true}) {  // checkpointing carries the mask through its own Function
    model->set_gradient_checkpointing(checkpointing);
    const auto [causal, causal_grads] = run(2);
    const auto [masked, masked_grads] = run(3);
    EXPECT_LT((causal - masked).abs().max().item<double>(), 1e-5) << "checkpointing " << checkpointing;
    double worst = 0;
    for (size_t i = 0; i < causal_grads.size(); ++i)
      worst = std::max(worst, ((causal_grads[i] - masked_grads[i]).abs().max() /
                               masked_grads[i].abs().max().clamp_min(1e-12)).item<double>());
    EXPECT_LT(worst, 1e-4) << "worst gradient difference relative to the tensor's largest entry, checkpointing "
                           << checkpointing;
  }
}

// bf16 is what GPU users train in: a padded batch must run (masks need bf16's own lowest value)
// and follow the fp32 model within bf16's precision, forward and backward.
TEST_P(ArchTest, Bfloat16FollowsFloat32ForwardAndBackward) {
  auto reference = random_model(GetParam(), 7, 0.05);
  auto half = random_model(GetParam(), 7, 0.05);
  {
    torch::NoGradGuard no_grad;  // the same weights (random_model's norm weights are not seeded)
    auto source = reference->named_parameters();
    for (auto& p : half->named_parameters()) p.value().copy_(source[p.key()]);
  }
  half->to(torch::kBFloat16);
  const int64_t T = 12;
  auto ids = torch::randint(3, 101, {2, T}, torch::kLong);
  auto mask = torch::ones({2, T}, torch::kLong);
  mask[0].slice(0, 0, 4).fill_(0);  // left padding
  auto expected = reference->next_token_logprobs(ids, mask);
  auto got = half->next_token_logprobs(ids, mask);
  ASSERT_TRUE(got.isfinite().all().item<bool>());
  const double error = (got.to(torch::kFloat32) - expected).abs().max().item<double>();
  EXPECT_LT(error, 0.05) << "max |log P| difference bf16 vs fp32";
  EXPECT_GT(error, 0.0) << "the bf16 model should not be fp32 in disguise";

  expected.sum().backward();
  got.to(torch::kFloat32).sum().backward();
  auto half_params = half->named_parameters();
  double worst = 0;
  for (const auto& item : reference->named_parameters()) {
    const auto g32 = item.value().grad();
    const auto g16 = half_params[item.key()].grad();
    ASSERT_TRUE(g16.defined()) << item.key();
    EXPECT_EQ(g16.scalar_type(), torch::kBFloat16);
    // Relative error of the whole gradient tensor: elementwise, bf16's rounding of tiny entries
    // (and the BLAS's thread-dependent summation order) would make the bound flaky.
    const double relative = (g16.to(torch::kFloat32) - g32).norm().item<double>() / (g32.norm().item<double>() + 1e-12);
    EXPECT_LT(relative, 0.15) << item.key();  // measured up to 0.05 (a real bug gives O(1))
    worst = std::max(worst, relative);
  }
  std::cout << "bf16 vs fp32: max |log P| difference " << error << ", worst relative gradient error " << worst << "\n";
}

TEST_P(ArchTest, SaveLoadRoundTripIsBitExactAndShardedEqualsSingleFile) {
  auto model = random_model(GetParam());
  ScratchDir dir;
  save_causal_lm(*model, (dir / "single").string());
  SaveOptions sharded;
  sharded.max_shard_bytes = 20000;  // forces several shards
  save_causal_lm(*model, (dir / "sharded").string(), sharded);
  ASSERT_TRUE(fs::exists(dir / "single" / "model.safetensors"));
  ASSERT_TRUE(fs::exists(dir / "sharded" / "model.safetensors.index.json"));
  ASSERT_FALSE(fs::exists(dir / "sharded" / "model.safetensors"));

  auto a = load_causal_lm((dir / "single").string(), torch::kCPU, torch::kFloat32);
  auto b = load_causal_lm((dir / "sharded").string(), torch::kCPU, torch::kFloat32);
  EXPECT_EQ(a.config.model_type, GetParam());
  auto original = model->named_parameters();
  auto pa = a.model->named_parameters(), pb = b.model->named_parameters();
  ASSERT_EQ(pa.size(), original.size());
  for (const auto& item : original) {
    EXPECT_TRUE(torch::equal(pa[item.key()], item.value())) << item.key();
    EXPECT_TRUE(torch::equal(pb[item.key()], item.value())) << item.key();
  }
  // Saving over an existing model folder needs `overwrite`; then it replaces it and leaves no
  // temporary folders behind.
  EXPECT_THROW(save_causal_lm(*a.model, (dir / "single").string()), percetrain::Error);
  SaveOptions overwrite;
  overwrite.overwrite = true;
  save_causal_lm(*a.model, (dir / "single").string(), overwrite);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) entries += !e.path().filename().empty();
  EXPECT_EQ(entries, 2);
}

INSTANTIATE_TEST_SUITE_P(Architectures, ArchTest, ::testing::Values("llama", "mistral", "qwen2", "qwen3"));

// ---------------------------------------------------------------------------------------------
TEST(ChunkedLogprobs, MatchesFullLogSoftmaxInValueAndGradient) {
  torch::manual_seed(3);
  auto model = random_model("llama");
  auto hidden = torch::randn({2, 7, 64}, torch::requires_grad());
  auto targets = torch::randint(0, 101, {2, 7}, torch::kLong);
  auto select = torch::rand({2, 7}) > 0.3;
  auto upstream = torch::randn({2, 7});

  auto chunked = model->target_logprobs(hidden, targets, select, /*chunk_tokens=*/3);
  (chunked * upstream).sum().backward();
  auto grad_hidden = hidden.grad().clone();
  auto grad_weight = model->output_weight().grad().clone();
  hidden.grad().zero_();
  model->output_weight().grad().zero_();

  auto logits = torch::matmul(hidden, model->output_weight().t());
  auto full = logits.log_softmax(-1).gather(2, targets.unsqueeze(2)).squeeze(2) * select;
  (full * upstream).sum().backward();
  EXPECT_TRUE(torch::allclose(chunked, full, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(grad_hidden, hidden.grad(), 1e-4, 1e-6));
  EXPECT_TRUE(torch::allclose(grad_weight, model->output_weight().grad(), 1e-4, 1e-6));
}

TEST_P(ArchTest, GradientCheckpointingGivesTheSameGradients) {
  auto model = random_model(GetParam());
  auto ids = torch::randint(3, 101, {2, 11}, torch::kLong);
  auto mask = torch::ones({2, 11}, torch::kLong);
  mask[1].slice(0, 0, 3).zero_();  // left padding in row 1
  auto grads = [&](bool checkpoint) {
    model->set_gradient_checkpointing(checkpoint);
    model->zero_grad();
    auto loss = -model->next_token_logprobs(ids, mask).sum();
    loss.backward();
    std::map<std::string, torch::Tensor> out;
    for (const auto& p : model->named_parameters()) out[p.key()] = p.value().grad().clone();
    return std::make_pair(loss.item<double>(), out);
  };
  auto plain = grads(false), checkpointed = grads(true);
  EXPECT_EQ(plain.first, checkpointed.first);
  for (const auto& [name, g] : plain.second) {
    EXPECT_GT(g.abs().sum().item<double>(), 0.0) << name;
    EXPECT_TRUE(torch::allclose(g, checkpointed.second[name], 1e-6, 1e-8)) << name;
  }
}

// The fused CPU kernels and the causal blocks of the attention (sequences over 128 positions)
// against the plain LibTorch composition, itself checked against the golden tensors above: the
// same log-probs and gradients for a left-padded batch, in float64.
TEST_P(ArchTest, FusedKernelsAndCausalBlocksMatchTheComposition) {
  auto model = random_model(GetParam());
  model->to(torch::kFloat64);
  const int64_t T = 300;  // three blocks, the last one partial
  auto ids = torch::randint(3, 101, {2, T}, torch::kLong);
  auto mask = torch::ones({2, T}, torch::kLong);
  mask[1].slice(0, 0, 140).zero_();  // left padding across the first block boundary
  auto run = [&](bool fused) {
    set_fused_kernels_enabled(fused);
    model->zero_grad();
    auto logprobs = model->next_token_logprobs(ids, mask);
    (-(logprobs * mask.slice(1, 1).to(torch::kFloat64)).sum()).backward();
    std::map<std::string, torch::Tensor> grads;
    for (const auto& p : model->named_parameters()) grads[p.key()] = p.value().grad().clone();
    set_fused_kernels_enabled(true);
    return std::make_pair(logprobs.detach(), grads);
  };
  auto fused = run(true), plain = run(false);
  auto real = mask.slice(1, 1).to(torch::kBool);
  EXPECT_LT((fused.first - plain.first).masked_select(real).abs().max().item<double>(), 1e-10);
  for (const auto& [name, g] : plain.second) {
    const double scale = g.abs().max().item<double>();
    EXPECT_GT(scale, 0.0) << name;
    EXPECT_LT((fused.second[name] - g).abs().max().item<double>(), 1e-10 * std::max(1.0, scale)) << name;
  }
}

TEST(ChunkedLogprobs, RejectsTargetsOutsideTheVocabulary) {
  auto model = random_model("qwen3");
  auto hidden = torch::randn({1, 2, 64});
  auto targets = torch::tensor({{5, 101}}, torch::kLong);
  EXPECT_THROW(model->target_logprobs(hidden, targets, torch::ones({1, 2}, torch::kBool)), Error);
}

TEST(Rope, Llama3ScalingKeepsHighFrequenciesAndSlowsLowOnes) {
  ModelConfig c = small_config("llama");
  c.head_dim = 64;
  c.rope_theta = 500000.0;
  auto plain = rope_inv_freq(c);
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  auto scaled = rope_inv_freq(c);
  EXPECT_FLOAT_EQ(scaled[0].item<float>(), plain[0].item<float>());          // short wavelength
  EXPECT_FLOAT_EQ(scaled[31].item<float>(), plain[31].item<float>() / 8.0f);  // long wavelength
  auto ratio = plain / scaled;
  EXPECT_TRUE(((ratio >= 1.0 - 1e-6) & (ratio <= 8.0 + 1e-5)).all().item<bool>());
}

// ---------------------------------------------------------------------------------------------
TEST(ModelFolder, MissingUnusedAndMisshapedTensorsAreOneClearError) {
  auto model = random_model("llama");
  ScratchDir dir;
  save_causal_lm(*model, (dir / "m").string());
  const std::string file = (dir / "m" / "model.safetensors").string();
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  {
    SafetensorsFile f(file);
    for (const auto& e : f.entries())
      if (e.name != "model.norm.weight") tensors.emplace_back(e.name, f.load(e.name));
  }
  tensors.emplace_back("model.extra.weight", torch::zeros({2}));
  tensors.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", torch::zeros({8}));  // ignored
  write_safetensors(file, tensors);
  try {
    load_causal_lm((dir / "m").string(), torch::kCPU, torch::kFloat32);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("missing tensors: model.norm.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unused tensors: model.extra.weight"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("inv_freq"), std::string::npos) << msg;
  }
}

TEST(ModelConfig, UnsupportedTypesAndValuesAreErrors) {
  const std::string base =
      R"({"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,)"
      R"("num_hidden_layers":1,"num_attention_heads":2)";
  EXPECT_NO_THROW(parse_model_config(base + "}", "config.json"));
  auto expect_error = [&](const std::string& text, const std::string& phrase) {
    try {
      parse_model_config(text, "config.json");
      ADD_FAILURE() << "no error for " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"model_type":"gpt2"})", "model_type 'gpt2' is not supported");
  expect_error(base + R"(,"hidden_act":"gelu"})", "hidden_act");
  expect_error(base + R"(,"rope_scaling":{"rope_type":"yarn","factor":4}})", "rope_type 'yarn'");
  expect_error(base + R"(,"num_key_value_heads":3})", "not a multiple");
  expect_error(base + R"(,"mlp_bias":true})", "mlp_bias");
  expect_error(R"({"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,)"
               R"("num_hidden_layers":1,"num_attention_heads":2,"use_sliding_window":true})",
               "use_sliding_window");
  expect_error("{not json", "not valid JSON");
  expect_error(R"({"model_type":"llama","vocab_size":10})", "missing required field 'hidden_size'");
}

// transformers >= 5 writes "rope_parameters" (rope_theta inside) instead of rope_theta and
// rope_scaling; read as transformers reads it, a non-empty rope_scaling still winning.
TEST(ModelConfig, ReadsTransformers5RopeParameters) {
  const std::string base =
      R"({"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,)"
      R"("num_hidden_layers":1,"num_attention_heads":2,)";
  auto c = parse_model_config(base + R"("rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,"factor":8.0,)"
                                     R"("low_freq_factor":1.0,"high_freq_factor":4.0,)"
                                     R"("original_max_position_embeddings":64}})",
                              "config.json");
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 64);
  c = parse_model_config(base + R"("rope_parameters":{"rope_type":"default","rope_theta":1000000.0}})", "config.json");
  EXPECT_EQ(c.rope_theta, 1000000.0);
  EXPECT_EQ(c.rope_scaling.type, "default");
  c = parse_model_config(base + R"("rope_theta":20000.0,"rope_scaling":{"rope_type":"linear","factor":2.0},)"
                                R"("rope_parameters":{"rope_type":"default","rope_theta":1000000.0}})",
                         "config.json");
  EXPECT_EQ(c.rope_theta, 20000.0);
  EXPECT_EQ(c.rope_scaling.type, "linear");
  // What percetrain writes back reads the same.
  const auto again = parse_model_config(model_config_to_json(c), "config.json");
  EXPECT_EQ(again.rope_theta, 20000.0);
  EXPECT_EQ(again.rope_scaling.factor, 2.0);
}

}  // namespace
