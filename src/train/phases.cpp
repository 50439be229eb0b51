// The phases of a training run, shared by `train`, per-user adapter runs and `bench`.
#include "percetrain/train/phases.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "percetrain/dist/grad_reducer.hpp"
#include "percetrain/model/decoder.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/train/metrics_log.hpp"
#include "percetrain/train/objective_inputs.hpp"
#include "percetrain/train/run_dir.hpp"
#include "percetrain/train/step.hpp"
#include "percetrain/train/validation_monitor.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/log.hpp"
#include "percetrain/util/file.hpp"
#include "percetrain/util/interrupt.hpp"

using nlohmann::json;

namespace percetrain {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double quantile(std::vector<float> values, double q) {
  // NaNs have no place in an order (nth_element with them is undefined behaviour): left out.
  values.erase(std::remove_if(values.begin(), values.end(), [](float v) { return std::isnan(v); }), values.end());
  if (values.empty()) return 0.0;
  const size_t k = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  std::nth_element(values.begin(), values.begin() + k, values.end());
  return values[k];
}

const char* describe(RunKind kind) {
  return kind == RunKind::kPerUser ? "a per-user adapter run (users.json, adapters/)"
                                   : "a training run of one model (checkpoints, final/)";
}

// The kind of run the manifest records, if any.
std::optional<RunKind> recorded_kind(const RunDirectory& run) {
  if (run.recorded("users.json")) return RunKind::kPerUser;
  for (const auto& folder : run.recorded_folders()) {
    if (folder.rfind("adapters/", 0) == 0) return RunKind::kPerUser;
    if (folder == "final" || folder == "best" || folder.rfind("checkpoint-", 0) == 0) return RunKind::kModel;
  }
  return std::nullopt;
}

}  // namespace

Placement place_run(const JobConfig& config) {
  Placement p;
  const DistEnv env = DistEnv::from_environment();
  p.device = env.distributed() ? device_for_local_rank(config.model.device, env.local_rank)
                               : parse_device(config.model.device);
  p.dtype = training_dtype(config, p.device);
  p.comm = make_communicator(env, config.train.distributed.backend, config.train.distributed.timeout_s, p.device);
  return p;
}

bool claim_run_folder(RunDirectory& run, RunKind kind, bool resumable, const TrainOptions& options,
                      ResumePolicy policy, const std::string& what_is_there) {
  const std::string& out_dir = run.path();
  if (const auto there = recorded_kind(run); there && *there != kind) {
    if (!options.overwrite)
      fail(out_dir, std::string("holds ") + describe(*there) + "; this job is " + describe(kind),
           "choose another output.dir, or start over with --overwrite, which removes only the files that run wrote");
    run.remove_recorded_run();
    resumable = false;
  }
  const bool resume = options.resume || policy == ResumePolicy::kAuto;
  if (resume && resumable) return true;
  // A fresh run: nothing in the folder may look like a run that is not recorded as ours.
  run.refuse_foreign_run_files();
  if (options.resume)
    fail(out_dir, std::string("--resume was given but there is no ") +
                      (kind == RunKind::kPerUser ? "per-user run" : "checkpoint") + " to resume from");
  if (run.holds_run()) {
    if (!options.overwrite && policy == ResumePolicy::kAuto && !resumable) {
      log_note(out_dir + ": the earlier run here wrote no checkpoint; starting over");
    } else if (!options.overwrite) {
      fail(out_dir, "holds an earlier run" + (what_is_there.empty() ? std::string() : " (" + what_is_there + ")"),
           "continue it with --resume, or start over with --overwrite, which removes only the files that run wrote");
    }
    run.remove_recorded_run();
  }
  return false;
}

ModelForTraining::ModelForTraining() = default;
ModelForTraining::ModelForTraining(ModelForTraining&&) noexcept = default;
ModelForTraining::~ModelForTraining() = default;

ModelForTraining load_model_for_training(const JobConfig& config, const std::string& weights, const Placement& place,
                                         const std::vector<PairedExample>& examples, const std::string& tokenizer_path) {
  return prepare_model_for_training(load_causal_lm(weights, place.device, place.dtype), config, place, examples,
                                    tokenizer_path);
}

ModelForTraining prepare_model_for_training(LoadedModel loaded, const JobConfig& config, const Placement& place,
                                            const std::vector<PairedExample>& examples,
                                            const std::string& tokenizer_path) {
  ModelForTraining m;
  m.loaded = std::move(loaded);
  if (!examples.empty())
    check_token_ids_fit(examples, tokenizer_path, -1, m.loaded.config.vocab_size, m.loaded.folder);
  m.loaded.model->train();
  m.loaded.model->set_gradient_checkpointing(config.train.gradient_checkpointing);
  m.objective = make_objective(config.objective);
  m.reference = load_reference_model(config, *m.objective, place.device, place.dtype, examples, tokenizer_path);
  return m;
}

std::unique_ptr<MetricsLog> open_logs(RunDirectory& run, const std::string& effective_config, int64_t keep_through_step) {
  run.record_file("metrics.jsonl");
  run.record_file("job_config.json");
  auto metrics = std::make_unique<MetricsLog>(run, keep_through_step);
  write_file_atomic(run.file("job_config.json"), effective_config, "the effective config");
  return metrics;
}

StepLoop::StepLoop(const Objective& objective, CausalLMImpl& model, const StepSettings& settings,
                   const TrainSection& train, Communicator& comm, int64_t run_steps, int64_t run_start,
                   MetricsLog* metrics, ProgressLine& progress, ValidationMonitor* monitor)
    : objective_(objective),
      model_(model),
      settings_(settings),
      train_(train),
      comm_(comm),
      run_steps_(run_steps),
      run_start_(run_start),
      metrics_(metrics),
      progress_(progress),
      monitor_(monitor),
      started_(now_seconds()) {}

json StepLoop::step_row(const LoopStretch& stretch, int64_t done, int64_t steps_per_epoch, int64_t stretch_step,
                        const StepResult& r, double lr, double seconds, const ReducerStats* reducer) const {
  json m = {{"step", done}};
  for (const auto& [key, value] : stretch.row_keys.items()) m[key] = value;
  if (!stretch.row_keys.empty()) m["user_step"] = stretch_step;
  m.update({{"epoch", static_cast<double>(stretch_step) / static_cast<double>(steps_per_epoch)},
            {"loss", r.loss},
            {"ce", r.ce()},
            {"lr", lr},
            {"grad_norm", r.grad_norm},
            {"response_tokens", r.tokens},
            {"tokens", r.processed},
            {"step_seconds", seconds},
            {"tokens_per_s", r.processed / std::max(1e-9, seconds)},
            {"peak_memory_mib", peak_memory_mib(settings_.device)}});
  if (!r.pir.empty()) {
    const double n = static_cast<double>(r.pir.size());
    m["pir_mean"] = r.pir_mean();
    m["pir_p10"] = quantile(r.pir, 0.10);
    m["pir_p50"] = quantile(r.pir, 0.50);
    m["pir_p90"] = quantile(r.pir, 0.90);
    m["clipped_low"] = r.clipped_low / n;
    m["clipped_high"] = r.clipped_high / n;
  }
  if (reducer) {
    m["comm_bytes"] = reducer->bytes + reducer->gather_bytes;
    m["comm_seconds"] = reducer->comm_seconds + reducer->gather_seconds;
    m["comm_hidden"] = reducer->hidden_fraction();
  }
  return m;
}

LoopEnd StepLoop::run(TrainStep& step, const LoopStretch& st) {
  LoopEnd end;
  const int64_t steps = st.plan->total_steps(), per_epoch = st.plan->steps_per_epoch();
  end.steps_done = st.step_offset + st.start;
  for (int64_t s = st.start; s < steps && !(monitor_ && monitor_->exhausted()); ++s) {
    // Step.
    const double lr = learning_rate_at(train_, s, steps);
    const double t_step = now_seconds();
    const StepResult r = step.run(*st.examples, st.plan->examples(s), lr, s);
    const int64_t done = st.step_offset + s + 1;  // the run's step number
    const bool last = s + 1 == steps;
    if (!r.finite)
      fail("train step " + std::to_string(done) + (st.what.empty() ? "" : " (" + st.what + ")"),
           "the loss is not finite" + (comm_.distributed() ? std::string(" on a rank") : " (" + std::to_string(r.loss) + ")"),
           st.nonfinite_hint ? st.nonfinite_hint() : "lower train.lr or check the data");
    const double seconds = now_seconds() - t_step;
    end.steps_done = done;
    end.last_loss = r.loss;
    tokens_ += r.processed;

    // Log.
    if (metrics_ && (done % train_.log_every == 0 || last))
      metrics_->append(step_row(st, done, per_epoch, s + 1, r, lr, seconds, step.reducer_stats()));
    const double elapsed = now_seconds() - started_;
    const double eta = elapsed / static_cast<double>(done - run_start_) * static_cast<double>(run_steps_ - done);
    // The objective's own (weighted) loss first, then the plain CE of the same tokens: PerCE's
    // weights follow the PIR, so its loss can rise while CE falls.
    char text[256];
    std::snprintf(text, sizeof(text), "step %lld/%lld | %s loss %.4f | ce %.4f | pir %+.3f | lr %.2e | %.0f tok/s | ETA %s",
                  (long long)(s + 1), (long long)steps, objective_.name().c_str(), r.loss, r.ce(), r.pir_mean(), lr,
                  elapsed > 0 ? tokens_ / elapsed : 0.0, format_duration(eta).c_str());
    progress_.update(st.label + text, done % train_.log_every == 0 && !progress_.live());

    // Validate.
    const bool end_of_epoch = (s + 1) % per_epoch == 0;
    if (st.valid && !st.valid->empty() &&
        ((train_.eval_every > 0 && (s + 1) % train_.eval_every == 0) || (train_.eval_every == 0 && end_of_epoch) || last)) {
      model_.eval();
      const auto v = validate_examples(model_, objective_, *st.valid, settings_, &comm_);
      model_.train();
      json row = {{"step", done}};
      for (const auto& [key, value] : st.row_keys.items()) row[key] = value;
      row.update({{"valid_ce", v.ce}, {"valid_loss", v.objective}, {"valid_pir_mean", v.pir_mean},
                  {"valid_response_tokens", v.tokens}});
      if (metrics_) metrics_->append(row);
      if (monitor_) monitor_->observe(row);
      end.valid_ce = v.ce;
      char line[200];
      std::snprintf(line, sizeof(line), "valid at step %lld: ce %.4f | %s loss %.4f | mean PIR %+.4f", (long long)done,
                    v.ce, objective_.name().c_str(), v.objective, v.pir_mean);
      progress_.line(st.label + line);
    }

    // Validate by generating, keep the best model, stop early (train.eval_generate, best_metric).
    const bool stop_early = monitor_ && monitor_->after_step(model_, done, last, metrics_, progress_) && !last;

    // Checkpoint; stop after --stop-after or a signal (any rank's: all stop at the same step).
    const int signal = static_cast<int>(comm_.max_over_ranks(interrupt_signal()));
    const bool stop_now = (st.stop_after > 0 && done >= st.stop_after && !last) || (signal && !last);
    if (st.save_checkpoint &&
        ((train_.save_every > 0 && done % train_.save_every == 0) || last || stop_now || stop_early))
      end.last_checkpoint = st.save_checkpoint(done);
    if (signal && !last) {
      end.kind = LoopEnd::kSignalled;
      end.signal = signal;
      return end;
    }
    if (stop_now) {
      end.kind = LoopEnd::kStopped;
      return end;
    }
  }
  if (monitor_ && monitor_->exhausted()) end.kind = LoopEnd::kEarlyStopped;
  return end;
}

}  // namespace percetrain
