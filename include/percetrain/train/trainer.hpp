// `percetrain train`: the optimisation loop around a model, an objective and paired examples.
// It never knows which objective it runs. Its pieces: step.hpp (one optimizer step),
// checkpoint.hpp, metrics_log.hpp, master_weights.hpp.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"
#include "percetrain/data/dataset.hpp"

namespace percetrain {

struct TrainOptions {
  bool resume = false;          // --resume: continue from the newest checkpoint in output.dir
  bool overwrite = false;       // --overwrite: remove the files a previous run recorded, then start
  int64_t stop_after_steps = 0; // --stop-after: save a checkpoint and stop after this many steps
  bool progress = true;         // live progress line / periodic lines on stderr
};

struct TrainSummary {
  int64_t steps_done = 0;
  int64_t total_steps = 0;
  double last_loss = 0.0;
  std::string final_model_dir;   // empty when stopped by --stop-after or a signal
  std::string last_checkpoint;
  std::string stopped_early;     // why early stopping ended the run before total_steps; "" otherwise
};

// Trains on prepared examples: loads config.model (creating it first for demo configs), runs
// the optimizer steps, writes checkpoints, metrics.jsonl and the final model under output.dir.
TrainSummary train_on_examples(const JobConfig& config, const TrainOptions& options,
                               const std::vector<PairedExample>& train_examples,
                               const std::vector<PairedExample>& valid_examples, const std::string& tokenizer_path,
                               int64_t pad_id);

// "train.seed 42 -> 7" for every key of the effective config (JSON texts) that differs between
// a recorded run and the current one and changes what the run computes (logging, saving and
// evaluation cadence, devices and paths of output and evaluation files may change). With
// `may_extend`, train.max_steps and train.epochs may change too: a run resumed to go on longer
// (the caller checks that the new run is not shorter than the checkpoint).
std::vector<std::string> resume_config_mismatches(const std::string& recorded, const std::string& current,
                                                  bool may_extend = false);

// The data files whose bytes define a run, by config key ("data.train_file" -> SHA-256): what a
// checkpoint or a per-user run records, and what a resumption must find unchanged.
std::map<std::string, std::string> data_checksums(const JobConfig& config);

// The whole job: tokenizer, data (data.train_file / valid_file through the pairing pipeline),
// then train_on_examples.
TrainSummary run_training(const JobConfig& config, const TrainOptions& options);

}  // namespace percetrain
