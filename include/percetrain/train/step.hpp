// One optimizer step, as the trainer and `bench` both run it: release the gradients, forward and
// backward every micro-batch, gradients to the fp32 masters, clip, optimizer step, write back.
// Also the pieces a step needs around it: the seeded step plan, the LR schedule, the optimizer.
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

// With several ranks (`comm` distributed, `reducer` set): every rank gets the same global step
// `indices`, cuts it into the same length-sorted micro-batches as one process would, and runs
// micro-batches rank, rank + N, ...; the loss is normalised by the whole step's tokens, the
// reducer sums the gradients over the ranks (zero 0: into the masters; zero 1/2: into this
// rank's shard, which the optimizer steps before the parameters are gathered), a non-finite loss
// on any rank skips the update on all, and the result's numbers are sums over the ranks. So N
// ranks compute the update one process computes for the same global batch.
class TrainStep {
 public:
  TrainStep(CausalLMImpl& model, const Objective& objective, MasterWeights& masters,
            torch::optim::Optimizer& optimizer, StepSettings settings, Communicator* comm = nullptr,
            GradReducer* reducer = nullptr);
  // One optimizer step over examples[indices] at learning rate `lr`.
  StepResult run(const std::vector<PairedExample>& examples, const std::vector<size_t>& indices, double lr);

 private:
  void reduce_result(StepResult& r) const;

  CausalLMImpl& model_;
  const Objective& objective_;
  MasterWeights& masters_;
  torch::optim::Optimizer& optimizer_;
  StepSettings settings_;
  Communicator* comm_;
  GradReducer* reducer_;
};

// Token-averaged validation numbers over a whole set, under inference mode.
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
