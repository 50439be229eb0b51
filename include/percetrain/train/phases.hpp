// The named phases every training run is built from: `train`'s one model (trainer.cpp), one
// adapter per user (per_user.cpp) and `bench`'s timed steps. Placement, the run folder's rules,
// loading, the optimizer (train/step.hpp), the logs and the step loop (metrics rows, progress,
// validation, best model and early stopping, checkpoints, signals, non-finite losses) each have
// one implementation here, and read the same on one rank and on many.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"
#include "percetrain/data/dataset.hpp"
#include "percetrain/dist/communicator.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/train/trainer.hpp"

namespace percetrain {

class MetricsLog;
class ProgressLine;
class RunDirectory;
class StepPlan;
class TrainStep;
class ValidationMonitor;
struct ReducerStats;
struct StepResult;
struct StepSettings;

// ---- Placement: this process's rank, device and training dtype ---------------------------------
struct Placement {
  std::unique_ptr<Communicator> comm;  // the single-rank one unless torchrun started several
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = c10::kFloat;
  bool root() const { return comm->is_root(); }
  bool distributed() const { return comm->distributed(); }
};
Placement place_run(const JobConfig& config);

// ---- The run folder ---------------------------------------------------------------------------
// What an output.dir holds decides what a run may do with it.
enum class RunKind {
  kModel,    // checkpoint-N/, final/, best/ of one model (or one adapter)
  kPerUser,  // users.json and adapters/<user>/ of lora.per_user
};
// The rules every run follows in its output.dir, after RunDirectory took the lock: a folder that
// holds the other kind of run is refused (--overwrite removes what that run wrote); an earlier run
// of this kind is continued when it can be (`resumable`) and resuming is asked for (--resume, or
// train.resume auto); otherwise it is refused, or removed with --overwrite (or with train.resume
// auto when it left nothing to continue). Files percetrain did not record are never touched.
// `what_is_there` describes the earlier run for the refusal ("newest checkpoint: step 40").
// Returns true when the earlier run is to be continued.
bool claim_run_folder(RunDirectory& run, RunKind kind, bool resumable, const TrainOptions& options,
                      ResumePolicy policy, const std::string& what_is_there = "");

// ---- The model --------------------------------------------------------------------------------
struct ModelForTraining {
  LoadedModel loaded;                    // in training mode; adapters are attached by the caller
  std::unique_ptr<Objective> objective;
  LoadedModel reference;                 // rho1's frozen reference model, else empty
  ModelForTraining();
  ModelForTraining(ModelForTraining&&) noexcept;
  ~ModelForTraining();
};
// The weights in `weights` (model.path, or a checkpoint's model folder), the objective and what it
// needs (rho1's reference model), all checked against the examples' token ids.
ModelForTraining load_model_for_training(const JobConfig& config, const std::string& weights, const Placement& place,
                                         const std::vector<PairedExample>& examples, const std::string& tokenizer_path);
// The same around a model the caller made (bench's random weights).
ModelForTraining prepare_model_for_training(LoadedModel loaded, const JobConfig& config, const Placement& place,
                                            const std::vector<PairedExample>& examples,
                                            const std::string& tokenizer_path);

// ---- The logs (rank 0) ------------------------------------------------------------------------
// job_config.json (the effective config) and metrics.jsonl with its TensorBoard event file (tb/),
// kept through `keep_through_step`, all recorded in the run folder's manifest.
std::unique_ptr<MetricsLog> open_logs(RunDirectory& run, const std::string& effective_config, int64_t keep_through_step);

// ---- The step loop ----------------------------------------------------------------------------
// What one stretch of optimizer steps trains: the main run has one, a per-user run one per user.
struct LoopStretch {
  const std::vector<PairedExample>* examples = nullptr;
  StepPlan* plan = nullptr;
  const std::vector<PairedExample>* valid = nullptr;  // validated at train.eval_every, epoch ends, the end
  int64_t start = 0;         // steps of the stretch already done (a resumed run)
  int64_t step_offset = 0;   // the run's step number of the stretch's step 0 (the steps of earlier users)
  nlohmann::json row_keys = nlohmann::json::object();  // added to every metrics row ({"user": ...})
  std::string label;         // before the progress line's text ("user 2/5 alice | ")
  std::string what;          // names the stretch in error lines ("user alice")
  // Checkpoints: called at train.save_every, the end, a stop or a signal with the run's step
  // number; returns the checkpoint's path. Unset: the stretch writes none (a per-user stretch).
  std::function<std::string(int64_t step)> save_checkpoint;
  int64_t stop_after = 0;    // --stop-after, in the run's step numbers (0: none)
  // For the error line of a non-finite loss: what the user may do.
  std::function<std::string()> nonfinite_hint;
};

struct LoopEnd {
  enum Kind { kFinished, kStopped, kEarlyStopped, kSignalled } kind = kFinished;
  int signal = 0;
  int64_t steps_done = 0;    // the run's step number of the last step done
  double last_loss = 0.0;
  double valid_ce = std::nan("");  // of the last validation, if any
  std::string last_checkpoint;
};

// The loop body every run shares: step, log, validate (and generate, keep the best model, stop
// early, through the monitor), checkpoint, stop. Rank 0 holds the logs; every rank runs it.
class StepLoop {
 public:
  // `run_steps`: the run's steps in all and `run_start` those done before this process started
  // (for the ETA); `metrics`: rank 0's log, null on the others; `monitor`: validation by
  // generation, best model and early stopping, when the run has them.
  StepLoop(const Objective& objective, CausalLMImpl& model, const StepSettings& settings, const TrainSection& train,
           Communicator& comm, int64_t run_steps, int64_t run_start, MetricsLog* metrics, ProgressLine& progress,
           ValidationMonitor* monitor = nullptr);
  LoopEnd run(TrainStep& step, const LoopStretch& stretch);

 private:
  nlohmann::json step_row(const LoopStretch& stretch, int64_t done, int64_t steps_per_epoch, int64_t stretch_step,
                          const StepResult& r, double lr, double seconds, const ReducerStats* reducer) const;

  const Objective& objective_;
  CausalLMImpl& model_;
  const StepSettings& settings_;
  const TrainSection& train_;
  Communicator& comm_;
  int64_t run_steps_, run_start_;
  MetricsLog* metrics_;
  ProgressLine& progress_;
  ValidationMonitor* monitor_;
  double started_ = 0.0;
  int64_t tokens_ = 0;
};

}  // namespace percetrain
