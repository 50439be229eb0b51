// Decoding: the KV cache against full recomputation, batching with left padding, sampling
// filters and seeds, stop reasons, and the resumable predictions file.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "percetrain/generate/generation.hpp"
#include "percetrain/model/decoder.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace percetrain;
using percetrain::testing_util::ScratchDir;

namespace {

constexpr int64_t kVocab = 4000;  // the demo tokenizer's

// A random model whose greedy output is not degenerate (a larger init std than HF's 0.02).
// Mistral gets a sliding window smaller than the sequences, so the cache must apply it too.
CausalLM random_generation_model(const std::string& arch, uint64_t seed = 11, double std = 0.3) {
  ModelConfig config = preset_model_config(arch, "tiny", kVocab);
  if (arch == "mistral") config.sliding_window = 4;
  CausalLM model(config);
  init_weights(*model, seed, std);
  return model;
}

std::vector<GenerationRequest> prompts() {
  // Different lengths, so that a batch is left-padded; ids spread over the vocabulary.
  std::vector<GenerationRequest> out;
  const std::vector<int> lengths = {5, 12, 1, 8};
  for (size_t i = 0; i < lengths.size(); ++i) {
    GenerationRequest r;
    r.id = "r" + std::to_string(i);
    for (int t = 0; t < lengths[i]; ++t) r.prompt.push_back(static_cast<int>((97 * (i + 1) + 389 * t) % kVocab));
    out.push_back(r);
  }
  return out;
}

GenerationOptions greedy(int64_t max_new_tokens, bool use_cache = true) {
  GenerationOptions o;
  o.temperature = 0.0;
  o.max_new_tokens = max_new_tokens;
  o.use_cache = use_cache;
  return o;
}

std::vector<std::vector<int>> tokens_of(const std::vector<GenerationResult>& results) {
  std::vector<std::vector<int>> out;
  for (const auto& r : results) out.push_back(r.tokens);
  return out;
}

const Tokenizer& demo_tokenizer() {
  static const auto tokenizer = load_tokenizer((testing_util::source_dir() / "data" / "tokenizer").string());
  return *tokenizer;
}

class ArchGenerationTest : public ::testing::TestWithParam<std::string> {};

// The cached forward reproduces hidden_states of the whole left-padded sequence: prefill over a
// prefix, then one column at a time.
TEST_P(ArchGenerationTest, CachedStepsReproduceTheFullForward) {
  torch::InferenceMode inference;
  auto model = random_generation_model(GetParam());
  const int64_t B = 3, T = 14, prefix = 6;
  auto ids = torch::randint(0, kVocab, {B, T}, torch::kLong);
  auto mask = torch::ones({B, T}, torch::kLong);
  mask.index_put_({0, torch::indexing::Slice(0, 4)}, 0);  // left padding of different widths
  mask.index_put_({2, torch::indexing::Slice(0, 1)}, 0);
  auto positions = position_ids_from_mask(mask);
  auto full = model->hidden_states(ids, mask, positions);

  KVCache cache;
  std::vector<torch::Tensor> parts = {
      model->forward_step(ids.slice(1, 0, prefix), mask.slice(1, 0, prefix), positions.slice(1, 0, prefix), cache)};
  for (int64_t t = prefix; t < T; ++t)
    parts.push_back(model->forward_step(ids.slice(1, t, t + 1), mask.slice(1, 0, t + 1),
                                        positions.slice(1, t, t + 1), cache));
  EXPECT_EQ(cache.length, T);
  auto stepped = torch::cat(parts, 1);
  auto real = mask.to(torch::kBool).unsqueeze(-1);
  const double err = (stepped - full).masked_fill(real.logical_not(), 0).abs().max().item<double>();
  // fp32 rounding relative to the hidden states' size: the cached steps multiply one query row at
  // a time, so their sums run in another order than the full forward's (measured up to 1.5e-5
  // absolute over random inputs on the 1.13 build, with hidden values of a few units).
  const double scale = std::max(1.0, full.masked_fill(real.logical_not(), 0).abs().max().item<double>());
  EXPECT_LT(err, 1e-5 * scale) << GetParam() << ", largest |hidden| " << scale;
}

TEST_P(ArchGenerationTest, GreedyWithCacheEqualsFullRecomputation) {
  auto model = random_generation_model(GetParam());
  Generator cached(*model, nullptr, greedy(12, true));
  Generator recompute(*model, nullptr, greedy(12, false));
  const auto batch = prompts();
  const auto with_cache = tokens_of(cached.generate(batch));
  const auto without = tokens_of(recompute.generate(batch));
  EXPECT_EQ(with_cache, without) << GetParam();
  // Not degenerate: some row produces more than one distinct token.
  bool varied = false;
  for (const auto& row : with_cache)
    for (int id : row) varied |= id != row[0];
  EXPECT_TRUE(varied) << "greedy output is one repeated token; raise the init std";
}

TEST_P(ArchGenerationTest, LeftPaddedBatchEqualsOneAtATime) {
  auto model = random_generation_model(GetParam());
  const auto batch = prompts();
  for (bool use_cache : {true, false}) {
    Generator generator(*model, nullptr, greedy(10, use_cache));
    const auto together = tokens_of(generator.generate(batch));
    for (size_t i = 0; i < batch.size(); ++i)
      EXPECT_EQ(tokens_of(generator.generate({batch[i]}))[0], together[i])
          << GetParam() << " prompt " << i << (use_cache ? " with" : " without") << " cache";
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, ArchGenerationTest,
                         ::testing::Values("llama", "mistral", "qwen2", "qwen3"));

// ---------------------------------------------------------------------------------------------
torch::Tensor kept(const torch::Tensor& filtered) { return filtered.isfinite().to(torch::kLong); }

TEST(SamplingFilters, TopKKeepsTheKLargestAndTies) {
  auto logits = torch::tensor({{1.0f, 4.0f, 3.0f, 2.0f, 3.0f}});
  EXPECT_TRUE(torch::equal(kept(top_k_filter(logits, 1)), torch::tensor({{0, 1, 0, 0, 0}}, torch::kLong)));
  EXPECT_TRUE(torch::equal(kept(top_k_filter(logits, 2)), torch::tensor({{0, 1, 1, 0, 1}}, torch::kLong)))
      << "a tie with the k-th value is kept, as in Hugging Face's TopKLogitsWarper";
  EXPECT_TRUE(torch::equal(top_k_filter(logits, 0), logits));
  EXPECT_TRUE(torch::equal(top_k_filter(logits, 9), logits));
}

TEST(SamplingFilters, TopPKeepsTheSmallestSetReachingP) {
  // Probabilities 0.5, 0.3, 0.15, 0.05 (shuffled), per row.
  auto probs = torch::tensor({{0.15, 0.5, 0.05, 0.3}}, torch::kDouble);
  auto logits = probs.log().to(torch::kFloat32);
  auto keep = [&](double p) { return kept(top_p_filter(logits, p)); };
  EXPECT_TRUE(torch::equal(keep(0.4), torch::tensor({{0, 1, 0, 0}}, torch::kLong)));  // 0.5 >= 0.4
  EXPECT_TRUE(torch::equal(keep(0.7), torch::tensor({{0, 1, 0, 1}}, torch::kLong)));  // 0.8 >= 0.7
  EXPECT_TRUE(torch::equal(keep(0.9), torch::tensor({{1, 1, 0, 1}}, torch::kLong)));  // 0.95 >= 0.9
  EXPECT_TRUE(torch::equal(keep(0.99), torch::tensor({{1, 1, 1, 1}}, torch::kLong)));
  EXPECT_TRUE(torch::equal(keep(1e-6), torch::tensor({{0, 1, 0, 0}}, torch::kLong))) << "at least one token";
  EXPECT_TRUE(torch::equal(top_p_filter(logits, 1.0), logits));
  // Rows are filtered independently; kept logits are unchanged.
  auto two = torch::cat({logits, logits.flip(-1)}, 0);
  auto filtered = top_p_filter(two, 0.7);
  EXPECT_TRUE(torch::equal(kept(filtered), torch::tensor({{0, 1, 0, 1}, {1, 0, 1, 0}}, torch::kLong)));
  EXPECT_FLOAT_EQ(filtered[0][1].item<float>(), logits[0][1].item<float>());
}

TEST(SamplingFilters, TemperatureScalesBeforeFiltering) {
  // At temperature 1 the top token has probability 0.5 < 0.6, so top-p keeps two; sharpened by
  // temperature 0.25 it has ~0.94 and is kept alone. Filtering first would keep two.
  auto logits = torch::tensor({{0.5, 0.3, 0.2}}, torch::kDouble).log().to(torch::kFloat32);
  EXPECT_EQ(kept(sampling_logits(logits, 1.0, 0, 0.6)).sum().item<int64_t>(), 2);
  auto sharp = sampling_logits(logits, 0.25, 0, 0.6);
  EXPECT_EQ(kept(sharp).sum().item<int64_t>(), 1);
  EXPECT_NEAR(sharp[0][0].item<float>(), std::log(0.5f) / 0.25f, 1e-5);
}

TEST(SamplingFilters, SampleRowsInvertsTheCumulativeDistribution) {
  auto logits = torch::tensor({{0.25, 0.0, 0.75}}, torch::kDouble).log().to(torch::kFloat32);
  EXPECT_EQ(sample_rows(logits, {0.0})[0], 0);
  EXPECT_EQ(sample_rows(logits, {0.2})[0], 0);
  EXPECT_EQ(sample_rows(logits, {0.3})[0], 2) << "a token with probability 0 is never drawn";
  EXPECT_EQ(sample_rows(logits, {0.999999})[0], 2);
}

TEST(Sampling, SameSeedSameOutputAndTopK1IsGreedy) {
  auto model = random_generation_model("qwen3");
  const auto batch = prompts();
  GenerationOptions sample;
  sample.temperature = 1.0;
  sample.top_p = 0.95;
  sample.max_new_tokens = 10;
  sample.seed = 5;
  const auto a = tokens_of(Generator(*model, nullptr, sample).generate(batch));
  const auto b = tokens_of(Generator(*model, nullptr, sample).generate(batch));
  EXPECT_EQ(a, b);
  sample.seed = 6;
  EXPECT_NE(tokens_of(Generator(*model, nullptr, sample).generate(batch)), a)
      << "another seed draws other tokens (at temperature 1 over 4 x 10 draws)";
  // A request's stream depends on (seed, id) only, not on its batch.
  sample.seed = 5;
  EXPECT_EQ(tokens_of(Generator(*model, nullptr, sample).generate({batch[1]}))[0], a[1]);

  GenerationOptions top1 = sample;
  top1.top_k = 1;
  top1.top_p = 1.0;
  EXPECT_EQ(tokens_of(Generator(*model, nullptr, top1).generate(batch)),
            tokens_of(Generator(*model, nullptr, greedy(10)).generate(batch)));
}

// ---------------------------------------------------------------------------------------------
TEST(StopReasons, EosStopStringAndLength) {
  auto model = random_generation_model("llama");
  const auto& tokenizer = demo_tokenizer();
  const GenerationRequest request = prompts()[1];
  const auto free_run = Generator(*model, &tokenizer, greedy(16)).generate({request})[0];
  ASSERT_EQ(free_run.tokens.size(), 16u);
  EXPECT_EQ(free_run.stop_reason, "length");
  EXPECT_EQ(free_run.prediction, tokenizer.decode(free_run.tokens, true));

  // EOS: pretend the 5th generated token is the end of sequence.
  GenerationOptions with_eos = greedy(16);
  with_eos.eos_ids = {free_run.tokens[4]};
  const auto stopped = Generator(*model, &tokenizer, with_eos).generate({request})[0];
  const auto first = std::find(free_run.tokens.begin(), free_run.tokens.end(), free_run.tokens[4]);
  const std::vector<int> expected(free_run.tokens.begin(), first + 1);
  EXPECT_EQ(stopped.stop_reason, "eos");
  EXPECT_EQ(stopped.tokens, expected) << "stops right after the EOS, which is counted";
  EXPECT_EQ(stopped.prediction, tokenizer.decode(std::vector<int>(expected.begin(), expected.end() - 1), true));

  // Stop string: the text of tokens 8..9 of the free run; the prediction is cut before it.
  const std::string text = free_run.prediction;
  const std::string before = tokenizer.decode(std::vector<int>(free_run.tokens.begin(), free_run.tokens.begin() + 8), true);
  const std::string stop = text.substr(before.size() > 2 ? before.size() - 2 : 0, 4);
  ASSERT_FALSE(stop.empty());
  GenerationOptions with_stop = greedy(16);
  with_stop.stop_strings = {"no such text \x01", stop};
  const auto cut = Generator(*model, &tokenizer, with_stop).generate({request})[0];
  EXPECT_EQ(cut.stop_reason, "stop_string") << "stop '" << stop << "' in '" << text << "'";
  EXPECT_EQ(cut.prediction, text.substr(0, text.find(stop)));
  EXPECT_LE(cut.tokens.size(), 10u);
  EXPECT_EQ(cut.tokens, std::vector<int>(free_run.tokens.begin(), free_run.tokens.begin() + cut.tokens.size()));
  EXPECT_NE(tokenizer.decode(cut.tokens, true).find(stop), std::string::npos)
      << "stops at the token that completes the stop string";
  EXPECT_EQ(tokenizer.decode(std::vector<int>(cut.tokens.begin(), cut.tokens.end() - 1), true).find(stop),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
std::vector<GenerationRequest> records(int n) {
  std::vector<GenerationRequest> out;
  for (int i = 0; i < n; ++i) {
    GenerationRequest r;
    r.id = "rec-" + std::to_string(i);
    for (int t = 0; t < 3 + (i * 5) % 7; ++t) r.prompt.push_back((31 * i + 211 * t + 7) % kVocab);
    out.push_back(r);
  }
  return out;
}

GenerationOptions sampled() {
  GenerationOptions o;
  o.temperature = 0.7;
  o.top_p = 0.9;
  o.max_new_tokens = 6;
  o.seed = 3;
  o.stop_strings = {"\n\n"};
  return o;
}

struct Interrupted {};

TEST(PredictionsFile, StreamedToTmpRenamedAndResumeEqualsAnUninterruptedRun) {
  auto model = random_generation_model("qwen2");
  const auto& tokenizer = demo_tokenizer();
  const auto data = records(7);
  ScratchDir dir("percetrain-generate");
  PredictionRunOptions run;
  run.batch_size = 3;

  const fs::path whole = dir / "whole.jsonl";
  Generator g1(*model, &tokenizer, sampled());
  auto summary = write_predictions(g1, data, whole.string(), run);
  EXPECT_EQ(summary.generated, 7);
  EXPECT_FALSE(fs::exists(whole.string() + ".tmp"));
  const std::string expected = testing_util::read_file(whole);
  std::istringstream lines(expected);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["id"], data[count].id);
    EXPECT_TRUE(j["prediction"].is_string());
    EXPECT_GE(j["generated_tokens"].get<int>(), 1);
    EXPECT_TRUE(j["stop_reason"] == "eos" || j["stop_reason"] == "stop_string" || j["stop_reason"] == "length");
    ++count;
  }
  EXPECT_EQ(count, 7);

  // Interrupted after the first batch of 3: the lines so far sit in OUT.tmp, OUT does not exist.
  const fs::path out = dir / "out.jsonl";
  const std::string tmp = out.string() + ".tmp";
  PredictionRunOptions interrupted = run;
  interrupted.on_batch = [](int64_t done, int64_t) {
    if (done >= 3) throw Interrupted{};
  };
  Generator g2(*model, &tokenizer, sampled());
  EXPECT_THROW(write_predictions(g2, data, out.string(), interrupted), Interrupted);
  EXPECT_FALSE(fs::exists(out));
  ASSERT_TRUE(fs::exists(tmp));
  EXPECT_EQ(testing_util::read_file(tmp), expected.substr(0, testing_util::read_file(tmp).size()));

  // Simulate a crash mid-line: keep two complete lines and half of the third. Resuming then
  // decodes records 2..6 in batches that differ from the uninterrupted run's.
  std::string partial = testing_util::read_file(tmp);
  const size_t second_end = partial.find('\n', partial.find('\n') + 1) + 1;
  partial = partial.substr(0, second_end) + partial.substr(second_end, 15);
  std::ofstream(tmp, std::ios::binary | std::ios::trunc) << partial;

  Generator g3(*model, &tokenizer, sampled());
  EXPECT_THROW(write_predictions(g3, data, out.string(), run), Error) << "OUT.tmp without --resume";
  PredictionRunOptions resume = run;
  resume.resume = true;
  summary = write_predictions(g3, data, out.string(), resume);
  EXPECT_EQ(summary.resumed, 2);
  EXPECT_EQ(summary.generated, 5);
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(testing_util::read_file(out), expected);
}

TEST(PredictionsFile, ResumeWithoutATmpFileStartsFreshAndAFinishedTmpIsJustRenamed) {
  auto model = random_generation_model("mistral");
  ScratchDir dir("percetrain-generate");
  Generator generator(*model, nullptr, greedy(3));
  const auto data = records(3);
  PredictionRunOptions resume;
  resume.resume = true;
  const fs::path fresh = dir / "fresh.jsonl", resumed = dir / "resumed.jsonl";
  EXPECT_EQ(write_predictions(generator, data, fresh.string(), resume).generated, 3);
  std::ofstream(resumed.string() + ".tmp", std::ios::binary) << testing_util::read_file(fresh);
  const auto summary = write_predictions(generator, data, resumed.string(), resume);
  EXPECT_EQ(summary.resumed, 3);
  EXPECT_EQ(summary.generated, 0);
  EXPECT_EQ(testing_util::read_file(resumed), testing_util::read_file(fresh));
  EXPECT_FALSE(fs::exists(resumed.string() + ".tmp"));
}

TEST(PredictionsFile, DuplicateIdsAndForeignResumeLinesAreErrors) {
  auto model = random_generation_model("llama");
  ScratchDir dir("percetrain-generate");
  Generator generator(*model, nullptr, greedy(2));
  auto data = records(2);
  data[1].id = data[0].id;
  EXPECT_THROW(write_predictions(generator, data, (dir / "a.jsonl").string(), {}), Error);

  const fs::path out = dir / "b.jsonl";
  std::ofstream(out.string() + ".tmp") << R"({"id":"other","prediction":"x","generated_tokens":1,"stop_reason":"eos"})" << "\n";
  PredictionRunOptions resume;
  resume.resume = true;
  try {
    write_predictions(generator, records(2), out.string(), resume);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'other'"), std::string::npos) << e.what();
  }
}

}  // namespace
