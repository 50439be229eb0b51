// What validation decides besides its log line: validation by generation (train.eval_generate:
// greedy decoding of a fixed validation subset, scored with ROUGE-L and METEOR), the best model
// so far (train.best_metric, kept as output.dir/best) and early stopping
// (train.early_stopping_patience). The trainer hands it every validation row it logs; on resume
// its state is recomputed from the metrics.jsonl rows the checkpoint has seen, so a resumed run
// decides exactly as the uninterrupted one.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"
#include "percetrain/data/dataset.hpp"

namespace percetrain {

class CausalLMImpl;
class Communicator;
class MetricsLog;
class ProgressLine;
class RunDirectory;
class Tokenizer;

// Greedy generation on the first `max_records` validation examples (file order, so the same
// subset every time), predictions against the examples' outputs.
struct GenerationScores {
  double rougeL = 0.0, meteor = 0.0;  // means over the records (eval's semantics)
  int64_t records = 0;
  double seconds = 0.0;
};
class GenerationValidator {
 public:
  // Loads the tokenizer and WordNet once (a missing WordNet fails here, not at the first
  // evaluation). `model_eos_id`: the model config's EOS, a stop id beside the tokenizer's.
  GenerationValidator(const JobConfig& config, const std::vector<PairedExample>& valid_examples,
                      const std::string& tokenizer_path, int64_t model_eos_id);
  ~GenerationValidator();
  // With a distributed `comm`, each rank decodes a contiguous stretch of the one-rank batches and
  // the scores are means over all records, the same on every rank.
  GenerationScores run(CausalLMImpl& model, Communicator* comm = nullptr) const;

 private:
  struct Prompt {
    std::vector<int> ids;
    std::string reference;
  };
  std::vector<Prompt> prompts_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<int64_t> eos_ids_;
  std::vector<std::string> stop_strings_;
  int64_t max_new_tokens_ = 0, batch_size_ = 1;
};

// The best value of train.best_metric so far and the evaluations since it, fed row by row.
class BestTracker {
 public:
  explicit BestTracker(BestMetric metric, int64_t patience);
  // A metrics row; rows without the metric's key are ignored. True when it improved the best.
  bool observe(const nlohmann::json& row);
  bool active() const { return metric_ != BestMetric::kNone; }
  bool exhausted() const { return patience_ > 0 && since_best_ >= patience_; }
  double best() const { return best_; }
  int64_t best_step() const { return best_step_; }
  int64_t since_best() const { return since_best_; }
  const std::string& key() const { return key_; }
  bool higher_is_better() const;
  // What the tracker has seen, as numbers a communicator can hand from rank 0 to the others.
  static constexpr size_t kStateSize = 4;
  std::vector<int64_t> state() const;
  void set_state(const std::vector<int64_t>& state);

 private:
  BestMetric metric_;
  std::string key_;
  int64_t patience_;
  bool has_best_ = false;
  double best_ = 0.0;
  int64_t best_step_ = 0, since_best_ = 0;
};

class ValidationMonitor {
 public:
  // Writes the model's files into a staging folder (best/): a Hugging Face folder, or a LoRA run's adapter.
  using ModelWriter = std::function<void(CausalLMImpl& model, const std::string& dir)>;
  // Every rank holds one; `run` (rank 0's run folder, null elsewhere) gets best/. Rank 0 replays
  // metrics.jsonl (already trimmed to the rows of the resumed checkpoint) into the tracker and
  // hands its state to the others, which then see the same rows and decide alike. Fails when
  // best_metric or eval_generate is set without validation examples.
  ValidationMonitor(const JobConfig& config, RunDirectory* run, Communicator& comm,
                    const std::vector<PairedExample>& valid_examples, const std::string& tokenizer_path,
                    const std::string& metrics_path, int64_t model_eos_id, ModelWriter write_model);
  ~ValidationMonitor();

  // A validation row the trainer logged (valid_ce, valid_loss, ...).
  void observe(const nlohmann::json& row);
  // After optimizer step `step` and its validation: generates when due (logs and prints the row),
  // writes best/ when the best metric improved at this step, and returns true when the patience
  // has run out (the trainer then saves and ends as at the last step).
  // `metrics`: rank 0's log, null on the others; every rank calls it at the same steps.
  bool after_step(CausalLMImpl& model, int64_t step, bool last, MetricsLog* metrics, ProgressLine& progress);
  // Patience already ran out in the replayed rows (a resumed run that had stopped early).
  bool exhausted() const { return tracker_.exhausted(); }
  // "early stopping: valid_rougeL has not improved for 3 evaluations (best 0.4321 at step 96)".
  std::string stop_reason() const;

 private:
  void save_best(CausalLMImpl& model, int64_t step);

  RunDirectory* run_;
  Communicator& comm_;
  ModelWriter write_model_;
  int64_t every_ = 0;
  std::unique_ptr<GenerationValidator> generator_;
  BestTracker tracker_;
  bool improved_ = false;  // at the current step, not yet saved
};

}  // namespace percetrain
