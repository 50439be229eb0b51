// Data-parallel gradient reduction: flat buckets in reverse parameter order, started from
// autograd hooks while backward still runs, and its ZeRO variants (stage 1: each rank owns 1/N
// of a flat parameter space with its fp32 masters and optimizer state; stage 2: gradients are
// reduce-scattered bucket by bucket during backward, so no rank holds a full gradient buffer).
//
// TrainStep (train/step.hpp) reaches it through its GradSync: the loss normaliser counts the
// whole global step's tokens (every rank derives them from the seeded plan without messages), so
// the reducer SUMS; each rank runs its share of the step's micro-batches, and only the last
// backward's hooks start collectives. Zero 0: the reduced gradients land in the fp32 masters.
// Zero 1/2: no masters; the optimizer steps shard() and gather_parameters() writes every rank's
// values back; checkpoints keep each rank's shard, which only the same layout can resume.
// One rank creates no reducer at all.
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <memory>
#include <vector>

#include "percetrain/dist/communicator.hpp"

namespace percetrain {

// Where each parameter's gradient sits in flat buckets. Buckets take whole parameters in
// reverse order (backward produces the last layers' gradients first) up to bucket_elements
// (one bigger parameter gets a bucket alone). For ZeRO each bucket is padded to a multiple of
// the world size and rank r owns slice r of every bucket: 1/N of the flat space, cut so that
// every bucket is reduce-scattered on its own.
struct BucketLayout {
  struct Slot {
    size_t param;    // index into the parameter list
    int64_t offset;  // first element within the bucket
    int64_t numel;
  };
  struct Bucket {
    std::vector<Slot> slots;  // in the order gradients are expected (reverse parameter order)
    int64_t numel = 0;        // elements with a parameter behind them
    int64_t padded = 0;       // numel rounded up to a multiple of the world size (ZeRO), else numel
    int64_t flat_offset = 0;  // where the bucket starts in the flat space
    int64_t slice = 0;         // padded / world size: each rank's part (ZeRO)
    int64_t shard_offset = 0;  // where this bucket's slice starts in every rank's shard
  };
  // One contiguous piece of a rank's shard that belongs to one parameter.
  struct ShardPiece {
    size_t param;
    int64_t param_offset;  // first element within the (flattened) parameter
    int64_t shard_offset;  // first element within the rank's shard
    int64_t numel;
  };

  std::vector<Bucket> buckets;  // in launch order
  std::vector<size_t> bucket_of;  // per parameter
  std::vector<size_t> slot_of;    // per parameter: index within its bucket's slots
  int world_size = 1;
  int64_t flat_numel = 0;   // sum of padded bucket sizes
  int64_t shard_numel = 0;  // flat_numel / world_size (ZeRO)

  static BucketLayout plan(const std::vector<int64_t>& param_numels, int64_t bucket_elements, int world_size,
                           bool pad_for_shards);
  // The pieces of `rank`'s shard, in shard order (ZeRO layouts only).
  std::vector<ShardPiece> shard_pieces(int rank) const;
};

struct GradReducerOptions {
  double bucket_mib = 25.0;  // of the fp32 (or target dtype) flat buckets
  // Start each bucket's collective from autograd hooks during the last backward, as soon as its
  // gradients are final. false: everything after backward (for comparison; zero 2 needs true).
  bool overlap = true;
  int zero_stage = 0;  // 0, 1 or 2
  // Zero 2: buckets allowed in flight at once before a hook waits for the oldest (0: no limit).
  // Bounds the fp32 bucket memory when communication is slower than backward.
  int max_buckets_in_flight = 4;
};

// What the last step's reduction cost, for the metrics log and `bench`.
struct ReducerStats {
  int64_t bytes = 0;          // bytes handed to collectives (per rank) for gradients
  int64_t gather_bytes = 0;   // zero 1/2: bytes all-gathered for parameters
  int64_t buckets = 0;
  int64_t started_in_backward = 0;  // buckets whose collective a hook started
  double comm_seconds = 0.0;  // wall time with at least one gradient collective in flight
  double wait_seconds = 0.0;  // time finish() blocked after backward
  double gather_seconds = 0.0;
  // Share of the communication hidden behind backward.
  double hidden_fraction() const {
    return comm_seconds > 0 ? std::max(0.0, 1.0 - wait_seconds / comm_seconds) : 0.0;
  }
};

class GradReducer {
 public:
  // `params`: the leaf tensors backward writes .grad into (the model's trainable parameters), in
  // model order. `targets`: where the reduced gradients go in zero 0 (the fp32 masters of a bf16
  // run); empty means `params` themselves. Zero 0 buckets have the targets' dtype. Zero 1/2 keep
  // an fp32 shard of the values (fp64 for fp64 targets), initialised from `targets` (or `params`),
  // and write the gathered values into `params` only. With overlap, hooks on the params'
  // gradient accumulators stay until the reducer is destroyed. Pending collectives and the
  // reducer must not outlive `comm`.
  GradReducer(Communicator& comm, std::vector<at::Tensor> params, std::vector<at::Tensor> targets,
              GradReducerOptions options);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  void begin_step();
  // Before each backward of the step: only the last one starts collectives (gradients of the
  // earlier ones accumulate in .grad as usual).
  void set_last_backward(bool last) { last_backward_ = last; }
  // After the last backward (or none at all, when this rank had nothing to do: its buckets are
  // then zeros): starts every bucket the hooks did not, waits, and puts the sum over ranks in
  // place: zero 0 -> targets[i].grad() (views of the buckets, identical on every rank);
  // zero 1/2 -> the shard's gradients. The params' own gradients are released.
  void finish();

  // The 2-norm of the whole reduced gradient (the same on every rank), and clipping to
  // `max_norm` the way torch::nn::utils::clip_grad_norm_ does (max_norm <= 0: no clipping).
  double clip_grad_norm(double max_norm);

  // Zero 1/2: this rank's fp32 values as optimizer parameters, one leaf tensor per piece (views
  // of shard_values(), with gradients that are views of the shard's gradient after finish()).
  const std::vector<at::Tensor>& shard() const { return shard_tensors_; }
  const std::vector<BucketLayout::ShardPiece>& shard_pieces() const { return pieces_; }
  const at::Tensor& shard_values() const { return shard_values_; }
  const at::Tensor& shard_grads() const { return shard_grads_; }
  // Zero 1/2, after the optimizer stepped the shard: every rank's updated values into `params`.
  void gather_parameters();

  const BucketLayout& layout() const { return layout_; }
  const ReducerStats& stats() const { return stats_; }
  const GradReducerOptions& options() const { return options_; }

 private:
  struct BucketState;
  struct HookTarget;
  void on_grad_ready(size_t param);
  void fill_slot(size_t param);
  void launch_ready(bool from_hook);
  void launch(size_t bucket, bool from_hook);
  void complete(size_t bucket);

  Communicator& comm_;
  std::vector<at::Tensor> params_, targets_;
  GradReducerOptions options_;
  BucketLayout layout_;
  at::TensorOptions bucket_options_;
  std::vector<BucketState> buckets_;
  std::vector<char> arrived_;  // per parameter: its gradient is in its bucket this step
  size_t next_launch_ = 0, next_complete_ = 0;
  int in_flight_ = 0;
  bool last_backward_ = true, in_step_ = false;
  std::shared_ptr<HookTarget> hook_target_;
  std::vector<std::shared_ptr<void>> accumulators_;  // grad accumulators are held weakly by tensors
  std::vector<BucketLayout::ShardPiece> pieces_;
  std::vector<at::Tensor> shard_tensors_;
  at::Tensor shard_values_, shard_grads_;
  ReducerStats stats_;
  double comm_busy_until_ = 0.0;
  std::exception_ptr hook_error_;
};

// The 2-norm of the gradient `grads` (fp64 sums; with `parts_over`, each rank holds a part and
// the norm is over all of them) and clipping to `max_norm` as torch::nn::utils::clip_grad_norm_
// does (max_norm <= 0: no clipping). The trainer's one gradient norm, on one rank and on many.
double clip_grad_norm(const std::vector<at::Tensor>& grads, double max_norm, Communicator* parts_over = nullptr);

// Makes every rank's `tensors` equal to `root`'s (replicas start identical).
void broadcast_tensors(Communicator& comm, const std::vector<at::Tensor>& tensors, int root = 0);

}  // namespace percetrain
