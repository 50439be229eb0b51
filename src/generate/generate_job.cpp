// The `generate` jobs: decode a dataset's prompts into a predictions file, and measure decode
// speed with and without the KV cache.
#include "percetrain/generate/generate_job.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>

#include "percetrain/data/dataset.hpp"
#include "percetrain/dist/record_shards.hpp"
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
  // The ranks first: a missing one fails the rendezvous before minutes of loading.
  const RecordJobPlacement place = place_record_job(config.model.device, config.train.distributed);
  Communicator& comm = *place.comm;
  const bool sharded = comm.distributed(), root = comm.is_root();
  const int rank = comm.rank(), world = comm.world_size();
  const std::string who = sharded ? "rank " + std::to_string(rank) + ": " : "";
  const auto& device = place.device;
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
  if (root) std::cerr << describe_loaded_model(loaded) << "\n";
  if (!o.adapter.empty() && !o.adapters.empty())
    fail("--adapters", "cannot be combined with --adapter", "give one adapter for every record, or a folder of per-user ones");
  if (!o.adapter.empty()) {
    verify_recorded_adapter(o.adapter);
    load_lora_adapter(*loaded.model, o.adapter);
    if (root) std::cerr << "adapter: " << o.adapter << "\n";
  }
  std::optional<AdapterLibrary> library;
  if (!o.adapters.empty()) {
    library.emplace(o.adapters, verify_recorded_adapter);
    const auto assignment = library->assign(example_users(examples, o.data));
    for (size_t i = 0; i < requests.size(); ++i) requests[i].group = assignment.groups[i];
    if (root) std::cerr << assignment.summary << "\n";
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

  if (root)
    std::cerr << "generate: " << requests.size() << " prompts " << (o.no_profile ? "without" : "with")
              << " the profile from " << o.data << "; "
              << (g.temperature > 0 ? "temperature " + std::to_string(g.temperature) : std::string("greedy"))
              << ", top_p " << g.top_p << ", top_k " << g.top_k << ", seed " << g.seed << ", at most "
              << g.max_new_tokens << " new tokens, batch " << g.batch_size
              << (sharded ? ", on " + std::to_string(world) + " ranks" : std::string()) << "\n";

  // This rank's share: all requests on one rank; on several, a contiguous stretch of the batches
  // one rank decodes (prediction_batches), so that every record is decoded in the batch it has on
  // one rank, passed in data order (its part lists them so; the batches stay the same, as no batch
  // spans two groups).
  const std::vector<GenerationRequest>* todo = &requests;
  std::vector<GenerationRequest> share;
  std::vector<int> owner(requests.size(), 0);
  check_part_layout(o.out, world, o.resume);
  if (sharded) {
    const auto batches = prediction_batches(requests, g.batch_size);
    std::vector<int64_t> costs;
    for (const auto& batch : batches) {
      size_t longest = 0;
      for (size_t i : batch) longest = std::max(longest, requests[i].prompt.size());
      costs.push_back(static_cast<int64_t>(batch.size()) * (static_cast<int64_t>(longest) + g.max_new_tokens));
    }
    const auto bounds = split_by_cost(costs, world);
    for (int r = 0; r < world; ++r)
      for (size_t b = bounds[static_cast<size_t>(r)]; b < bounds[static_cast<size_t>(r) + 1]; ++b)
        for (size_t i : batches[b]) owner[i] = r;
    for (size_t i = 0; i < requests.size(); ++i)
      if (owner[i] == rank) share.push_back(requests[i]);
    todo = &share;
  }
  const std::string target = sharded ? part_path(o.out, rank, world) : o.out;

  Generator generator(*loaded.model, tokenizer.get(), options);
  PredictionRunOptions run;
  run.batch_size = g.batch_size;
  run.resume = o.resume;
  if (library) run.before_batch = [&](const std::string& group) { library->use(*loaded.model, group); };
  ShardSync sync(comm);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t first_done = -1;
  run.on_batch = [&](int64_t done, int64_t total) {
    // The ETA counts only the records this run decoded (resumed ones cost nothing).
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (first_done < 0) first_done = done - std::min<int64_t>(done, g.batch_size);
    const double per_record = seconds / static_cast<double>(std::max<int64_t>(1, done - first_done));
    const auto eta = static_cast<long long>(per_record * static_cast<double>(total - done) + 0.5);
    std::cerr << who << "generate: " << done << "/" << total << " records, decode " << std::fixed
              << std::setprecision(1) << generator.stats().decode_tokens_per_second() << " tokens/s, ETA " << eta / 60
              << "m" << std::setfill('0') << std::setw(2) << eta % 60 << "s" << std::setfill(' ') << "\n";
    // A signal stops here, after the batch is written and flushed: --resume continues from it. On
    // several ranks every rank stops at the same step, whichever saw the signal.
    const int signal = sync.step(interrupt_signal());
    if (signal != 0 && (sharded || done < total))
      throw Interrupted(signal, who + "wrote " + std::to_string(done) + " of " + std::to_string(total) +
                                    " predictions to " + target + ".tmp",
                        "");
  };
  PredictionRunSummary summary;
  if (sharded && o.resume && std::filesystem::exists(target)) {
    // Finished by a run that stopped before the merge; the merge checks its ids.
    summary.total = summary.resumed = static_cast<int64_t>(todo->size());
    std::cerr << who << "resuming: " << target << " is complete (" << todo->size() << " predictions)\n";
  } else {
    summary = write_predictions(generator, *todo, target, run);
  }
  const auto& s = generator.stats();
  int64_t generated_tokens = s.generated_tokens, decode_tokens = s.decode_tokens;
  double decode_seconds = s.decode_seconds, prefill_seconds = s.prefill_seconds;
  if (sharded) {
    // Every part is complete once every rank has finished; then rank 0 merges them.
    if (const int signal = sync.finish(interrupt_signal()); signal != 0)
      throw Interrupted(signal, who + "all " + std::to_string(todo->size()) + " predictions of this rank are in " + target,
                        "");
    std::vector<int64_t> sums = {summary.resumed, summary.generated, generated_tokens, decode_tokens};
    comm.all_reduce(sums);
    std::vector<double> slowest = {decode_seconds, prefill_seconds};
    comm.all_reduce(slowest, ScalarReduce::kMax);
    summary.total = static_cast<int64_t>(requests.size());
    summary.resumed = sums[0];
    summary.generated = sums[1];
    generated_tokens = sums[2];
    decode_tokens = sums[3];
    decode_seconds = slowest[0];
    prefill_seconds = slowest[1];
    comm.decided_by_root(
        [&] {
          std::vector<std::string> parts, ids;
          for (int r = 0; r < world; ++r) parts.push_back(part_path(o.out, r, world));
          for (const auto& r : requests) ids.push_back(r.id);
          merge_parts(o.out, parts, owner, ids);
          for (const auto& part : existing_parts(o.out)) std::filesystem::remove(part);
          return std::vector<int64_t>();
        },
        0, "merge the ranks' part files into " + o.out);
    if (!root) return;  // rank 0 says what was written
  }
  // Decode rate of the job: on several ranks, every rank's tokens over the slowest rank's time.
  const double rate = decode_seconds > 0 ? static_cast<double>(decode_tokens) / decode_seconds : 0.0;
  std::cout << "wrote " << summary.total << " predictions to " << o.out << " (" << summary.resumed
            << " resumed, " << summary.generated << " decoded"
            << (sharded ? " on " + std::to_string(world) + " ranks" : std::string()) << "); " << generated_tokens
            << " tokens generated, decode " << std::fixed << std::setprecision(1) << rate << " tokens/s, prefill "
            << std::setprecision(2) << prefill_seconds << " s\n";
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
