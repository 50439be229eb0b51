// `percetrain bench --collectives`: what the ranks' collectives and the gradient reducer cost on
// this machine (docs/distributed.md, "Measured here"). Run under torchrun; one rank measures the
// single-rank path (no communication).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "percetrain/bench/bench.hpp"
#include "percetrain/dist/communicator.hpp"
#include "percetrain/dist/grad_reducer.hpp"
#include "percetrain/model/config.hpp"
#include "percetrain/model/decoder.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain {
namespace {

double seconds_now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A small Llama shape (3.4M parameters) when no --random-config names another.
constexpr const char* kDefaultShape =
    R"({"model_type":"llama","vocab_size":4096,"hidden_size":256,"intermediate_size":688,)"
    R"("num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"tie_word_embeddings":false})";

void wait_for(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

}  // namespace

int run_collectives_bench(const BenchOptions& o, const JobConfig& config) {
  const DistEnv env = DistEnv::from_environment();
  const auto device = env.distributed() ? device_for_local_rank(config.model.device, env.local_rank)
                                        : parse_device(config.model.device);
  const auto comm = make_communicator(env, config.train.distributed.backend, config.train.distributed.timeout_s, device);
  Communicator& c = *comm;
  const int me = c.rank(), ranks = c.world_size();
  const bool root = c.is_root();
  if (root) std::printf("%d rank(s), %s, %s\n", ranks, c.backend().c_str(), device.str().c_str());
  const auto options = torch::TensorOptions().device(device).dtype(torch::kFloat32);

  // The collectives alone, at a small and a bucket-sized message.
  for (double mib : {1.0, 25.0}) {
    const int64_t n = static_cast<int64_t>(mib * 1024 * 1024 / 4) / ranks * ranks;
    const auto flat = torch::ones({n}, options), shard = torch::empty({n / ranks}, options);
    const auto gathered = torch::empty({n}, options);
    std::vector<double> ar, rs, ag, ag_by_sum;
    for (int64_t rep = 0; rep < o.steps + o.warmup; ++rep) {
      c.barrier();
      double t = seconds_now();
      c.all_reduce_sum(flat).wait();
      const double t_ar = seconds_now() - t;
      t = seconds_now();
      c.reduce_scatter_sum(flat, shard).wait();
      const double t_rs = seconds_now() - t;
      t = seconds_now();
      c.all_gather(shard, gathered).wait();
      const double t_ag = seconds_now() - t;
      t = seconds_now();  // the alternative: every rank's slice in a zeroed buffer, summed
      gathered.zero_();
      gathered.narrow(0, me * (n / ranks), n / ranks).copy_(shard);
      c.all_reduce_sum(gathered).wait();
      const double t_sum = seconds_now() - t;
      if (rep < o.warmup) continue;
      ar.push_back(t_ar);
      rs.push_back(t_rs);
      ag.push_back(t_ag);
      ag_by_sum.push_back(t_sum);
    }
    if (root)
      std::printf("%.0f MiB fp32: all_reduce %.1f ms, reduce_scatter %.1f ms, all_gather %.1f ms, all_gather as a sum "
                  "%.1f ms (median of %lld)\n",
                  mib, 1e3 * median_of(ar), 1e3 * median_of(rs), 1e3 * median_of(ag), 1e3 * median_of(ag_by_sum),
                  static_cast<long long>(o.steps));
  }

  // The reducer on a model's gradients: how much of the communication backward hides.
  LoadedModel loaded = o.random_config.empty() ? LoadedModel{} : random_causal_lm(o.random_config, device, torch::kFloat32, 3);
  CausalLM model{nullptr};
  if (loaded.model) {
    model = loaded.model;
  } else {
    model = CausalLM(parse_model_config(kDefaultShape, "bench --collectives"));
    init_weights(*model, 3, 0.02);
    model->to(device);
  }
  std::vector<torch::Tensor> params;
  int64_t numel = 0;
  for (const auto& p : model->parameters()) {
    params.push_back(p);
    numel += p.numel();
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(77 + me));
  const int64_t vocab = model->config().vocab_size;
  const auto ids = torch::randint(0, vocab, {4, 128}, gen, torch::kLong).to(device);
  const auto mask = torch::ones({4, 128}, torch::kLong).to(device);
  auto step = [&](GradReducer* reducer, double* backward_s) {
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
    if (reducer) reducer->begin_step();
    const auto loss = -model->next_token_logprobs(ids, mask).sum();
    const double t = seconds_now();
    loss.backward();
    wait_for(device);
    *backward_s = seconds_now() - t;
    if (reducer) reducer->finish();
    wait_for(device);
    return seconds_now() - t;
  };
  double backward_s = 0;
  std::vector<double> local;
  for (int64_t rep = 0; rep < o.steps + o.warmup; ++rep)
    if (const double s = step(nullptr, &backward_s); rep >= o.warmup) local.push_back(s);
  if (root)
    std::printf("model of %.2fM parameters, 4 x 128 tokens: backward alone %.1f ms\n", numel / 1e6, 1e3 * median_of(local));
  if (!c.distributed()) return 0;
  for (double bucket : {25.0, 4.0})
    for (bool overlap : {false, true}) {
      GradReducerOptions reducer_options;
      reducer_options.bucket_mib = bucket;
      reducer_options.overlap = overlap;
      GradReducer reducer(c, params, {}, reducer_options);
      std::vector<double> total, wait, comm_s, bwd;
      for (int64_t rep = 0; rep < o.steps + o.warmup; ++rep) {
        c.barrier();
        const double s = step(&reducer, &backward_s);
        if (rep < o.warmup) continue;
        total.push_back(s);
        bwd.push_back(backward_s);
        wait.push_back(reducer.stats().wait_seconds);
        comm_s.push_back(reducer.stats().comm_seconds);
      }
      if (root)
        std::printf("bucket %.0f MiB (%zu buckets), overlap %d: backward+reduce %.1f ms (backward %.1f), comm %.1f ms, "
                    "waited after backward %.1f ms, hidden %.0f%%\n",
                    bucket, reducer.layout().buckets.size(), overlap, 1e3 * median_of(total), 1e3 * median_of(bwd),
                    1e3 * median_of(comm_s), 1e3 * median_of(wait),
                    100.0 * std::max(0.0, 1.0 - median_of(wait) / std::max(1e-12, median_of(comm_s))));
    }
  return 0;
}

}  // namespace percetrain
