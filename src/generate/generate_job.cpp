// The `generate` jobs: decode a dataset's prompts into a predictions file, and measure decode
// speed with and without the KV cache.
#include "percetrain/generate/generate_job.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <optional>

#include "percetrain/data/dataset.hpp"
#include "percetrain/generate/generation.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/train/adapters.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/interrupt.hpp"

namespace percetrain {

void run_generation(const JobConfig& config, const GenerateJobOptions& o) {
  const auto device = parse_device(config.model.device);
  const auto dtype = parse_dtype(config.model.dtype, device, "model.dtype");
  prepare_model_folder(config.model, tokenizer_path(config), false);
  auto tokenizer = load_tokenizer(tokenizer_path(config));

  // The prompts of training: the paired sequences minus their responses.
  DatasetStats stats;
  DataConfig data = config.data;
  if (o.limit > 0) data.max_records = o.limit;
  const auto examples = load_paired_examples(data, o.data, o.golds, *tokenizer, &stats);
  if (examples.empty()) fail(o.data, "holds no usable records");
  std::vector<GenerationRequest> requests;
  for (const auto& ex : examples) {
    const auto& sequence = o.no_profile ? ex.counterfactual : ex.personalised;
    const auto prompt_length = static_cast<int64_t>(sequence.size()) - ex.response_length;
    if (prompt_length < 1) fail(o.data + ": " + ex.id, "the prompt has no tokens");
    requests.push_back({ex.id, std::vector<int>(sequence.begin(), sequence.begin() + prompt_length), ""});
  }

  LoadedModel loaded = load_causal_lm(config.model.path, device, dtype);
  check_token_ids_fit(examples, tokenizer_path(config), tokenizer->vocab_size(), loaded.config.vocab_size,
                      loaded.folder);
  std::cerr << describe_loaded_model(loaded) << "\n";
  if (!o.adapter.empty() && !o.adapters.empty())
    fail("--adapters", "cannot be combined with --adapter", "give one adapter for every record, or a folder of per-user ones");
  if (!o.adapter.empty()) {
    verify_recorded_adapter(o.adapter);
    load_lora_adapter(*loaded.model, o.adapter);
    std::cerr << "adapter: " << o.adapter << "\n";
  }
  std::optional<AdapterLibrary> library;
  if (!o.adapters.empty()) {
    library.emplace(o.adapters, verify_recorded_adapter);
    const auto assignment = library->assign(example_users(examples, o.data));
    for (size_t i = 0; i < requests.size(); ++i) requests[i].group = assignment.groups[i];
    std::cerr << assignment.summary << "\n";
  }
  const GenerateSection& g = config.generate;
  GenerationOptions options;
  options.max_new_tokens = g.max_new_tokens;
  options.temperature = g.temperature;
  options.top_p = g.top_p;
  options.top_k = g.top_k;
  options.seed = g.seed;
  options.stop_strings = g.stop_strings;
  options.use_cache = !o.no_cache;
  options.source = "model " + config.model.path + (o.adapter.empty() ? "" : " + adapter " + o.adapter) +
                   (o.adapters.empty() ? "" : " + per-user adapters in " + o.adapters);
  for (int64_t id : {static_cast<int64_t>(tokenizer->eos_id()), loaded.config.eos_token_id})
    if (id >= 0 && std::find(options.eos_ids.begin(), options.eos_ids.end(), id) == options.eos_ids.end())
      options.eos_ids.push_back(id);

  std::cerr << "generate: " << requests.size() << " prompts " << (o.no_profile ? "without" : "with")
            << " the profile from " << o.data << "; "
            << (g.temperature > 0 ? "temperature " + std::to_string(g.temperature) : std::string("greedy"))
            << ", top_p " << g.top_p << ", top_k " << g.top_k << ", seed " << g.seed << ", at most "
            << g.max_new_tokens << " new tokens, batch " << g.batch_size << "\n";

  Generator generator(*loaded.model, tokenizer.get(), options);
  PredictionRunOptions run;
  run.batch_size = g.batch_size;
  run.resume = o.resume;
  if (library) run.before_batch = [&](const std::string& group) { library->use(*loaded.model, group); };
  const auto t0 = std::chrono::steady_clock::now();
  int64_t first_done = -1;
  run.on_batch = [&](int64_t done, int64_t total) {
    // The ETA counts only the records this run decoded (resumed ones cost nothing).
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (first_done < 0) first_done = done - std::min<int64_t>(done, g.batch_size);
    const double per_record = seconds / static_cast<double>(std::max<int64_t>(1, done - first_done));
    const auto eta = static_cast<long long>(per_record * static_cast<double>(total - done) + 0.5);
    std::cerr << "generate: " << done << "/" << total << " records, decode " << std::fixed << std::setprecision(1)
              << generator.stats().decode_tokens_per_second() << " tokens/s, ETA " << eta / 60 << "m"
              << std::setfill('0') << std::setw(2) << eta % 60 << "s" << std::setfill(' ') << "\n";
    // A signal stops here, after the batch is written and flushed: --resume continues from it.
    if (const int signal = interrupt_signal(); signal != 0 && done < total)
      throw Interrupted(signal, "wrote " + std::to_string(done) + " of " + std::to_string(total) + " predictions to " +
                                    o.out + ".tmp",
                        "");
  };
  const auto summary = write_predictions(generator, requests, o.out, run);
  const auto& s = generator.stats();
  std::cout << "wrote " << summary.total << " predictions to " << o.out << " (" << summary.resumed
            << " resumed, " << summary.generated << " decoded); " << s.generated_tokens
            << " tokens generated, decode " << std::fixed << std::setprecision(1)
            << s.decode_tokens_per_second() << " tokens/s, prefill " << std::setprecision(2)
            << s.prefill_seconds << " s\n";
}

// Decode speed of one model with and without the KV cache, on random prompt ids, greedy, with
// no EOS so that every run produces exactly --new-tokens tokens per prompt.
void run_decode_benchmark(const DecodeBenchmarkOptions& o) {
  if (o.model.empty() == o.random_config.empty())
    fail("generate --benchmark", "give exactly one of --model and --random-config");
  if (o.prompt_tokens < 1 || o.new_tokens < 2 || o.batch_size < 1)
    fail("generate --benchmark", "--prompt-tokens and --batch-size must be >= 1, --new-tokens >= 2");
  const auto device = parse_device(o.device, "--device");
  const auto dtype = parse_dtype(o.dtype, device, "--dtype");
  CausalLM model{nullptr};
  std::string what;
  if (!o.model.empty()) {
    model = load_causal_lm(o.model, device, dtype).model;
    what = o.model;
  } else {
    // A config.json alone: random weights, nothing written to disk (a 0.6B model is 2.4 GB).
    model = random_causal_lm(o.random_config, device, dtype, o.seed).model;
    what = o.random_config + " (random weights)";
  }
  const ModelConfig& c = model->config();
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();

  std::vector<GenerationRequest> requests;
  uint64_t state = o.seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t b = 0; b < o.batch_size; ++b) {
    GenerationRequest r{"bench-" + std::to_string(b), {}, ""};
    for (int64_t t = 0; t < o.prompt_tokens; ++t) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      r.prompt.push_back(static_cast<int>((state >> 33) % static_cast<uint64_t>(c.vocab_size)));
    }
    requests.push_back(r);
  }
  std::cout << "model: " << what << ": " << c.model_type << ", " << params << " parameters, "
            << c.num_hidden_layers << " layers, hidden " << c.hidden_size << ", heads "
            << c.num_attention_heads << "/" << c.num_key_value_heads << " kv, head_dim " << c.head_dim
            << ", vocab " << c.vocab_size << "\n"
            << "device " << device.str() << ", " << dtype_name(dtype) << ", " << at::get_num_threads()
            << " intra-op threads; " << o.batch_size << " x " << o.prompt_tokens << " prompt tokens, "
            << o.new_tokens << " new tokens each, greedy\n";

  GenerationOptions options;
  options.temperature = 0.0;
  options.max_new_tokens = 2;
  Generator(*model, nullptr, options).generate(requests);  // warm-up: allocator, thread pool

  options.max_new_tokens = o.new_tokens;
  std::vector<std::vector<int>> tokens[2];
  double rate[2] = {0, 0};
  for (int pass = 0; pass < 2; ++pass) {
    options.use_cache = pass == 0;
    Generator generator(*model, nullptr, options);
    for (const auto& r : generator.generate(requests)) tokens[pass].push_back(r.tokens);
    const auto& s = generator.stats();
    rate[pass] = s.decode_tokens_per_second();
    std::cout << std::fixed << (pass == 0 ? "kv cache:  prefill " : "recompute: first token ")
              << std::setprecision(3) << s.prefill_seconds << " s, decode " << s.decode_tokens
              << " tokens in " << s.decode_seconds << " s = " << std::setprecision(2) << rate[pass]
              << " tokens/s\n";
  }
  std::cout << "kv cache speed-up on decode: " << std::setprecision(2) << rate[0] / rate[1] << "x"
            << "; same tokens: " << (tokens[0] == tokens[1] ? "yes" : "NO") << "\n";
}

}  // namespace percetrain
