// The jobs behind `percetrain generate`: predictions for a dataset, and the decode-speed benchmark.
#pragma once

#include <cstdint>
#include <string>

#include "percetrain/config/job_config.hpp"

namespace percetrain {

struct GenerateJobOptions {
  std::string data, golds, out;  // records (and LaMP golds), predictions JSONL
  bool no_profile = false;       // decode from the counterfactual prompts
  bool resume = false;           // continue from OUT.tmp
  bool no_cache = false;         // recompute the whole prefix every step (checks)
  int64_t limit = 0;             // > 0: only the first `limit` records
  // A PEFT LoRA adapter folder applied to the model (unmerged), or a folder of per-user adapters
  // (AdapterLibrary): each record decodes with its user's, records of users without one on the
  // base model. At most one of the two.
  std::string adapter, adapters;
};

// Decodes a response for every record of options.data with the prompt built as in training and
// the config's "generate" settings, into options.out (streamed to OUT.tmp, renamed when complete).
void run_generation(const JobConfig& config, const GenerateJobOptions& options);

struct DecodeBenchmarkOptions {
  std::string model, random_config;  // exactly one: a model folder or a config.json (random weights)
  std::string device = "auto", dtype = "auto";
  int64_t prompt_tokens = 64, new_tokens = 16, batch_size = 1;
  uint64_t seed = 0;
};

// Decode tokens/s with and without the KV cache on random prompts, greedy, printed to stdout.
void run_decode_benchmark(const DecodeBenchmarkOptions& options);

}  // namespace percetrain
