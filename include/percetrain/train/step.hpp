// One optimizer step, as every run (train, per-user adapters, bench) runs it: release the
// gradients, forward and backward every micro-batch, sync the gradients (to the fp32 masters, or
// summed over the ranks), clip, optimizer step, write back. Also the pieces a step needs around
// it: the seeded step plan, the LR schedule, and the optimizer with its gradient sync.
#pragma once

#include <c10/core/Device.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"
#include "percetrain/data/dataset.hpp"

namespace torch::optim {
class Optimizer;
}

namespace percetrain {

class CausalLMImpl;
class Communicator;
class FusedAdamW;
class GradReducer;
class MasterWeights;
class Objective;
struct ReducerStats;

// model.dtype resolved for training on `device`; float16 is refused (it would need loss scaling).
c10::ScalarType training_dtype(const JobConfig& config, const c10::Device& device);

// Learning rate before optimizer step `step` (0-based) of `total_steps`.
double learning_rate_at(const TrainSection& train, int64_t step, int64_t total_steps);

// AdamW over the masters (the optimizer's own parameters); norms and biases are not decayed.
std::unique_ptr<FusedAdamW> make_optimizer(const MasterWeights& masters, const TrainSection& train);
// The same over tensors already split by weight decay (the pieces of a ZeRO shard).
std::unique_ptr<FusedAdamW> make_optimizer(std::vector<torch::Tensor> decayed, std::vector<torch::Tensor> not_decayed,
                                           const TrainSection& train);
// Whether a parameter of this name and rank is weight-decayed (not norms, not biases).
bool is_decayed(const std::string& name, int64_t dim);
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

// Which examples every optimizer step visits: each epoch a seeded shuffle (seed, epoch) cut into
// steps of batch_size. It depends only on its arguments, so a resumed run (or another process)
// derives the same plan without being told.
class StepPlan {
 public:
  StepPlan(size_t num_examples, int64_t batch_size, uint64_t seed, int64_t epochs, int64_t max_steps);
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t total_steps() const { return total_steps_; }
  // The examples of step `step` (0-based).
  const std::vector<size_t>& examples(int64_t step);

 private:
  size_t num_examples_;
  int64_t batch_size_;
  uint64_t seed_;
  int64_t steps_per_epoch_, total_steps_;
  int64_t planned_epoch_ = -1;
  std::vector<std::vector<size_t>> epoch_;
};

struct StepSettings {
  int64_t micro_batch_size = 4;
  int64_t pad_id = 0;
  c10::Device device{c10::kCPU};
  int64_t chunk_tokens = 0;
  Normalization normalize = Normalization::kTokens;
  double grad_clip = 0.0;  // 0 = off
  double clip_min = 0.8, clip_max = 5.0;  // for the clipped_low / clipped_high shares
  CausalLMImpl* reference = nullptr;      // the frozen reference model of rho1 (not owned)

  static StepSettings from(const JobConfig& config, int64_t pad_id, const c10::Device& device);
};

// What a step did, for the metrics log.
struct StepResult {
  bool finite = true;        // false: a micro-batch's loss was not finite; nothing was updated
  double loss = 0.0;         // the normalised objective loss of the step (or the bad value)
  double ce_sum = 0.0;       // sum of -log p over response tokens
  int64_t tokens = 0;        // response tokens
  int64_t processed = 0;     // all non-padding tokens through a forward
  double grad_norm = 0.0;    // before clipping
  std::vector<float> pir;    // per response token, when the objective has PIR
  int64_t clipped_low = 0, clipped_high = 0;

  double ce() const { return tokens ? ce_sum / static_cast<double>(tokens) : 0.0; }
  double pir_mean() const;
};

// How a step's gradients reach the optimizer and its updates reach the model. One rank: the
// model's gradients go to the fp32 masters (no-ops for an fp32 model), the updated masters back.
// Several ranks: the bucketed reducer sums them over the ranks (zero 0: into the masters; zero
// 1/2: into this rank's shard, whose updated values are gathered back). Both clip with the one
// clip_grad_norm (fp64 sums), so one rank and many compute the same norm.
class GradSync {
 public:
  virtual ~GradSync() = default;
  virtual void begin_step() = 0;                // drops every gradient of the previous step
  virtual void before_backward(bool last) {}    // the reducer starts collectives in the last one
  virtual void finish() = 0;                    // the step's gradient, where the optimizer reads it
  virtual void release() = 0;                   // drops the step's gradients (a skipped update)
  virtual double clip_grad_norm(double max_norm) = 0;  // the norm before clipping
  virtual void after_update() = 0;              // the updated values into the model's parameters
  virtual const ReducerStats* stats() const { return nullptr; }  // several ranks only
};

// What updates the trainable parameters of a run: fp32 masters (bf16 models), AdamW over what this
// rank updates and the GradSync between them. The choice below the trainer: one rank: AdamW over
// the masters; several: the reducer, and with train.distributed.zero 1/2 an optimizer over this
// rank's shard alone. Replicas start equal (rank 0's values are broadcast).
struct Optimization {
  std::unique_ptr<MasterWeights> masters;
  std::unique_ptr<GradReducer> reducer;  // several ranks only
  std::unique_ptr<FusedAdamW> optimizer;
  std::unique_ptr<GradSync> sync;
  int64_t zero = 0;

  Optimization();
  Optimization(Optimization&&) noexcept;
  ~Optimization();
  // The optimizer state every rank holds alike (checkpoint's optimizer.pt), or null under ZeRO.
  const torch::optim::Optimizer* replicated_optimizer() const;
  // The optimizer state of a checkpoint (and this rank's shard under ZeRO).
  void restore(const std::string& checkpoint, int rank);
  // ZeRO: this rank's optimizer state and shard into a checkpoint's staging folder.
  void save_shard(const std::string& staging, int rank) const;
};
Optimization build_optimization(CausalLMImpl& model, const TrainSection& train, Communicator& comm);

// With several ranks (`comm` distributed): every rank gets the same global step `indices`, cuts
// it into the same length-sorted micro-batches as one process would, and runs micro-batches rank,
// rank + N, ...; the loss is normalised by the whole step's tokens, the GradSync sums the
// gradients over the ranks, a non-finite loss on any rank skips the update on all, and the
// result's numbers are sums over the ranks. So N ranks compute the update one process computes
// for the same global batch.
class TrainStep {
 public:
  TrainStep(CausalLMImpl& model, const Objective& objective, torch::optim::Optimizer& optimizer, GradSync& sync,
            StepSettings settings, Communicator* comm = nullptr);
  // One optimizer step over examples[indices] at learning rate `lr`; `step` (the plan's step)
  // and the indices key LoRA dropout's masks (set_lora_dropout_rows).
  StepResult run(const std::vector<PairedExample>& examples, const std::vector<size_t>& indices, double lr,
                 int64_t step);
  // What the last step's reduction cost (several ranks), else null.
  const ReducerStats* reducer_stats() const { return sync_.stats(); }

 private:
  void reduce_result(StepResult& r) const;

  CausalLMImpl& model_;
  const Objective& objective_;
  torch::optim::Optimizer& optimizer_;
  GradSync& sync_;
  StepSettings settings_;
  Communicator* comm_;
};

// Token-averaged validation numbers over a whole set, under inference mode. pir_mean is the
// objective's own PIR where it has one (word-scope PIR for pir_scope word), so that it means what
// the training rows' pir_mean means; else the token log-probability difference.
struct ValidationResult {
  double ce = 0.0, objective = 0.0, pir_mean = 0.0;
  int64_t tokens = 0;
};
// With a distributed `comm`, each rank validates its share of the micro-batches and the sums
// are reduced.
ValidationResult validate_examples(CausalLMImpl& model, const Objective& objective,
                                   const std::vector<PairedExample>& examples, const StepSettings& settings,
                                   Communicator* comm = nullptr);

}  // namespace percetrain
