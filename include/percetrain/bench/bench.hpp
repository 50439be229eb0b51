// `percetrain bench`: ms/step, tokens/s, model-FLOP utilisation and peak memory of training
// steps (ce, perce, perce with gradient checkpointing, perce with an unchunked loss) on random
// tokens of a config's shapes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"

namespace percetrain {

struct BenchOptions {
  std::string config;
  std::vector<std::string> overrides;
  int64_t steps = 3, warmup = 1, rounds = 1;
  int64_t with_length = 0, without_length = 0, response_length = 0;
  std::string variants = "ce,perce,perce+checkpointing,perce+unchunked";
  std::string random_config;  // a config.json: random weights of its shape instead of model.path
  std::string profile;  // chrome trace of the measured steps of each variant: PATH.VARIANT.json
  std::string variant;  // internal: run one variant in this process and print its JSON
  bool json = false;
  bool collectives = false;  // measure the ranks' collectives and the gradient reducer instead
};

// Runs every variant in a child process of this executable (`bench --variant V ...`), `rounds`
// times alternating, and prints the table (or JSON); with `variant` set, runs that one variant
// here and prints its JSON line. Returns the exit status.
int run_bench(BenchOptions& options, const JobConfig& config);

// Rounds that differ by more than this share of their median make the timings unreliable.
constexpr double kBenchSpreadWarning = 0.10;

// The table's footer about rounds: each variant's ms/step per round (min / median / max and the
// spread (max - min) / median), the PerCE / CE ratio of the medians next to `theory` and per round
// (rounds alternate the variants, so round k of ce and of perce ran side by side), and a warning
// when a variant's spread exceeds kBenchSpreadWarning (or a note that one round measures none).
// `rounds_ms[i]` holds variant `variants[i]`'s rounds in the order they ran.
std::string bench_rounds_report(const std::vector<std::string>& variants,
                                const std::vector<std::vector<double>>& rounds_ms, double theory);

// bench --collectives, under torchrun: all_reduce, reduce_scatter and all_gather at 1 and 25 MiB,
// then backward with the gradient reducer (bucket 25 and 4 MiB, with and without overlap) on
// --random-config's shape (else a 3.4M-parameter Llama): medians of --steps after --warmup,
// printed by rank 0. Returns the exit status.
int run_collectives_bench(const BenchOptions& options, const JobConfig& config);

}  // namespace percetrain
