// `percetrain train`: the optimisation loop around a model, an objective and paired batches.
// It never knows which objective it runs.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "percetrain/config/job_config.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/train/batching.hpp"

namespace percetrain {

class CausalLMImpl;

// The two passes of one micro-batch: the personalised forward (with autograd when grad mode is
// on) and, when the objective needs it, the counterfactual forward under inference mode.
struct MicroBatchPass {
  ResponseTokens tokens;
  ObjectiveTerms terms;
};
MicroBatchPass run_micro_batch(CausalLMImpl& model, const Objective& objective, const PairedBatch& batch,
                               int64_t chunk_tokens, bool always_counterfactual = false);

// Mixed precision: fp32 master copies of a bf16/fp16 model's parameters, which the optimizer owns
// and updates; the model computes forward and backward in its own dtype. For an fp32/fp64 model
// (or wanted = false) the masters are the model's parameters themselves and the calls are no-ops.
// Per step: release_grads, forward/backward, grads_to_master, optimizer step, master_to_model.
class MasterWeights {
 public:
  MasterWeights(CausalLMImpl& model, bool wanted);
  bool active() const { return active_; }
  const std::vector<torch::Tensor>& parameters() const { return master_; }
  std::vector<std::pair<std::string, torch::Tensor>> named_parameters() const;
  // Drops every gradient (model and master) instead of zeroing it: the first backward of the
  // step then writes its gradients instead of adding them to zeros (one pass over them less).
  void release_grads();
  void grads_to_master();  // model grads -> fp32 master grads; the model grads are released
  void master_to_model();  // rounds the updated masters into the model's parameters
  // Checkpoints keep the masters (master_weights.pt): resuming from the rounded weights would
  // not continue the same run.
  void save(const std::string& checkpoint_dir) const;
  void load(const std::string& checkpoint_dir);

 private:
  std::vector<std::string> names_;
  std::vector<torch::Tensor> model_, master_;
  bool active_ = false;
};

// Learning rate before optimizer step `step` (0-based) of `total_steps`.
double learning_rate_at(const TrainSection& train, int64_t step, int64_t total_steps);

struct TrainOptions {
  bool resume = false;          // --resume: continue from the newest checkpoint in output.dir
  int64_t stop_after_steps = 0; // --stop-after: save a checkpoint and stop after this many steps
  bool progress = true;         // live progress line / periodic lines on stderr
};

struct TrainSummary {
  int64_t steps_done = 0;
  int64_t total_steps = 0;
  double last_loss = 0.0;
  std::string final_model_dir;   // empty when stopped early
  std::string last_checkpoint;
};

// Trains on prepared examples: loads config.model (creating it first for demo configs), runs
// the optimizer steps, writes checkpoints, metrics.jsonl and the final model under output.dir.
TrainSummary train_on_examples(const JobConfig& config, const TrainOptions& options,
                               const std::vector<PairedExample>& train_examples,
                               const std::vector<PairedExample>& valid_examples, const std::string& tokenizer_path,
                               int64_t pad_id);

// The whole job: tokenizer, data (data.train_file / valid_file through the pairing pipeline),
// then train_on_examples.
TrainSummary run_training(const JobConfig& config, const TrainOptions& options);

// Creates the model folder a demo config names (model.init_arch set, model.path absent).
void ensure_model_folder(const JobConfig& config);

}  // namespace percetrain
