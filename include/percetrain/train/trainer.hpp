// `percetrain train`: the optimisation loop around a model, an objective and paired batches.
// It never knows which objective it runs.
#pragma once

#include <cstdint>
#include <string>

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
