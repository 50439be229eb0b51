// The training recipe: set up (plan, resume point, model, optimizer, logs), loop over optimizer
// steps (log, validate, checkpoint), save the final model. The pieces live in step, checkpoint,
// metrics_log and master_weights.
#include "percetrain/train/trainer.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "percetrain/model/hf_folder.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/train/checkpoint.hpp"
#include "percetrain/train/fused_adamw.hpp"
#include "percetrain/train/master_weights.hpp"
#include "percetrain/train/metrics_log.hpp"
#include "percetrain/train/step.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace percetrain {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double quantile(std::vector<float> values, double q) {
  if (values.empty()) return 0.0;
  const size_t k = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  std::nth_element(values.begin(), values.begin() + k, values.end());
  return values[k];
}

// The newest complete checkpoint when the run resumes; {0, ""} for a fresh start.
std::pair<int64_t, std::string> resume_point(const Checkpointer& checkpoints, const TrainOptions& options,
                                             const TrainSection& train, const std::string& out_dir) {
  if (!options.resume && train.resume != ResumePolicy::kAuto) return {0, ""};
  const auto found = checkpoints.complete();
  if (!found.empty()) return *found.rbegin();
  if (options.resume) fail(out_dir, "--resume was given but there is no checkpoint to resume from");
  return {0, ""};
}

json step_row(int64_t done, int64_t steps_per_epoch, const StepResult& r, double lr, double step_seconds,
              double peak_memory) {
  json m = {{"step", done},
            {"epoch", static_cast<double>(done) / static_cast<double>(steps_per_epoch)},
            {"loss", r.loss},
            {"ce", r.ce()},
            {"lr", lr},
            {"grad_norm", r.grad_norm},
            {"response_tokens", r.tokens},
            {"tokens", r.processed},
            {"step_seconds", step_seconds},
            {"tokens_per_s", r.processed / std::max(1e-9, step_seconds)},
            {"peak_memory_mib", peak_memory}};
  if (!r.pir.empty()) {
    const double n = static_cast<double>(r.pir.size());
    m["pir_mean"] = r.pir_mean();
    m["pir_p10"] = quantile(r.pir, 0.10);
    m["pir_p50"] = quantile(r.pir, 0.50);
    m["pir_p90"] = quantile(r.pir, 0.90);
    m["clipped_low"] = r.clipped_low / n;
    m["clipped_high"] = r.clipped_high / n;
  }
  return m;
}

}  // namespace

TrainSummary train_on_examples(const JobConfig& config, const TrainOptions& options,
                               const std::vector<PairedExample>& train_examples,
                               const std::vector<PairedExample>& valid_examples, const std::string& tokenizer_path,
                               int64_t pad_id) {
  // ---- set up: plan, resume point, model, optimizer, logs -----------------------------------
  const TrainSection& train = config.train;
  const std::string out_dir = config.output.dir;
  ProgressLine progress(options.progress);
  if (train_examples.empty()) fail(config.file + ": data.train_file", "holds no usable training examples");
  fs::create_directories(out_dir);
  ensure_model_folder(config.model, tokenizer_path);
  const auto device = parse_device(config.model.device);
  const auto dtype = parse_dtype(config.model.dtype, device, "model.dtype");
  if (dtype == torch::kFloat16)
    fail(config.file + ": model.dtype", "float16 training needs loss scaling, which percetrain does not do",
         "use bfloat16: the same memory with float32's exponent range");

  StepPlan plan(train_examples.size(), train.batch_size, train.seed, train.epochs, train.max_steps);
  const int64_t total_steps = plan.total_steps();
  Checkpointer checkpoints(out_dir, train.keep_last, tokenizer_path);
  const auto [start_step, resume_from] = resume_point(checkpoints, options, train, out_dir);

  LoadedModel loaded = load_causal_lm(resume_from.empty() ? config.model.path : resume_from, device, dtype);
  CausalLMImpl& model = *loaded.model;
  model.train();
  model.set_gradient_checkpointing(train.gradient_checkpointing);
  const auto objective = make_objective(config.objective);
  // Mixed precision: a bf16 model computes forward and backward; the optimizer updates fp32
  // master copies and writes them back. Without them, updates below bf16's resolution (8
  // mantissa bits: lr 5e-6 on a weight of 0.02 is one part in 4000) would round to nothing.
  MasterWeights masters(trainable_parameters(model), train.master_weights);
  const auto optimizer = make_optimizer(masters, train);
  if (!resume_from.empty()) checkpoints.restore(resume_from, *optimizer, masters);
  reset_peak_memory(device);

  MetricsLog metrics((fs::path(out_dir) / "metrics.jsonl").string(), start_step);
  write_file_atomic((fs::path(out_dir) / "job_config.json").string(), job_config_to_json(config));
  int64_t response_tokens = 0;
  for (const auto& e : train_examples) response_tokens += scored_response_tokens(e);
  progress.line("train: " + std::to_string(train_examples.size()) + " examples (" + std::to_string(response_tokens) +
                " response tokens), " + std::to_string(total_steps) + " steps of " + std::to_string(train.batch_size) +
                " (micro-batches of " + std::to_string(train.micro_batch_size) + "), objective " + objective->name() +
                ", " + loaded.config.model_type + " on " + device.str() + " in " + dtype_name(dtype) +
                (masters.active() ? " (fp32 master weights)" : "") +
                (start_step > 0 ? ", resuming after step " + std::to_string(start_step) : ""));

  const StepSettings settings = StepSettings::from(config, pad_id, device);
  TrainStep step(model, *objective, masters, *optimizer, settings);
  const TrainerState state_template{0, total_steps, plan.steps_per_epoch(), train.seed, objective->name(),
                                    static_cast<int64_t>(train_examples.size())};
  auto save_checkpoint = [&](int64_t done) {
    TrainerState state = state_template;
    state.step = done;
    return checkpoints.save(model, *optimizer, masters, state);
  };

  // ---- the loop ------------------------------------------------------------------------------
  TrainSummary summary;
  summary.total_steps = total_steps;
  summary.steps_done = start_step;
  const auto t_start = Clock::now();
  int64_t tokens_since_start = 0;
  for (int64_t s = start_step; s < total_steps; ++s) {
    const double lr = learning_rate_at(train, s, total_steps);
    const auto t_step = Clock::now();
    const StepResult r = step.run(train_examples, plan.examples(s), lr);
    if (!r.finite) {
      const auto saved = checkpoints.complete();
      fail("train step " + std::to_string(s + 1), "the loss is not finite (" + std::to_string(r.loss) + ")",
           saved.empty() ? "no checkpoint was written yet; lower train.lr or check the data"
                         : "the last good checkpoint is " + saved.rbegin()->second + "; lower train.lr and resume");
    }
    const double step_seconds = seconds_since(t_step);
    const int64_t done = s + 1;
    summary.steps_done = done;
    summary.last_loss = r.loss;
    tokens_since_start += r.processed;

    // Log.
    if (done % train.log_every == 0 || done == total_steps)
      metrics.append(step_row(done, plan.steps_per_epoch(), r, lr, step_seconds, peak_memory_mib(device)));
    const double elapsed = seconds_since(t_start);
    const double eta = elapsed / static_cast<double>(done - start_step) * static_cast<double>(total_steps - done);
    char text[256];
    std::snprintf(text, sizeof(text), "step %lld/%lld | loss %.4f | ce %.4f | pir %+.3f | lr %.2e | %.0f tok/s | ETA %s",
                  (long long)done, (long long)total_steps, r.loss, r.ce(), r.pir_mean(), lr,
                  elapsed > 0 ? tokens_since_start / elapsed : 0.0, format_duration(eta).c_str());
    progress.update(text, done % train.log_every == 0 && !progress.live());

    // Validate.
    const bool last = done == total_steps;
    const bool end_of_epoch = done % plan.steps_per_epoch() == 0;
    if (!valid_examples.empty() &&
        ((train.eval_every > 0 && done % train.eval_every == 0) || (train.eval_every == 0 && end_of_epoch) || last)) {
      model.eval();
      const auto v = validate_examples(model, *objective, valid_examples, settings);
      model.train();
      metrics.append({{"step", done}, {"valid_ce", v.ce}, {"valid_loss", v.objective}, {"valid_pir_mean", v.pir_mean},
                      {"valid_response_tokens", v.tokens}});
      char line[200];
      std::snprintf(line, sizeof(line), "valid at step %lld: ce %.4f | %s loss %.4f | mean PIR %+.4f", (long long)done,
                    v.ce, objective->name().c_str(), v.objective, v.pir_mean);
      progress.line(line);
    }

    // Checkpoint.
    const bool stop_now = options.stop_after_steps > 0 && done >= options.stop_after_steps && !last;
    if ((train.save_every > 0 && done % train.save_every == 0) || last || stop_now)
      summary.last_checkpoint = save_checkpoint(done);
    if (stop_now) {
      progress.line("stopped after step " + std::to_string(done) + "; continue with --resume");
      return summary;
    }
  }

  // ---- save ----------------------------------------------------------------------------------
  SaveOptions save;
  save.tokenizer_source = tokenizer_path;
  summary.final_model_dir = (fs::path(out_dir) / "final").string();
  save_causal_lm(model, summary.final_model_dir, save);
  progress.line("done: " + std::to_string(total_steps) + " steps; model in " + summary.final_model_dir +
                ", metrics in " + metrics.path());
  return summary;
}

TrainSummary run_training(const JobConfig& config, const TrainOptions& options) {
  if (config.data.train_file.empty()) fail(config.file + ": data.train_file", "is required for training");
  const std::string tokenizer_file = tokenizer_path(config);
  ensure_model_folder(config.model, tokenizer_file);
  auto tokenizer = load_tokenizer(tokenizer_file);
  const int64_t pad_id = tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;

  auto load = [&](const std::string& file, const std::string& golds) {
    DatasetStats stats;
    auto examples = load_paired_examples(config.data, file, golds, *tokenizer, &stats);
    if (options.progress) {
      std::fprintf(stderr, "%s: %lld records -> %lld examples (%lld skipped, %lld with the profile cut, %lld with the input cut)\n",
                   file.c_str(), (long long)stats.records, (long long)stats.examples, (long long)stats.skipped,
                   (long long)stats.truncated_profile, (long long)stats.truncated_input);
    }
    return examples;
  };
  auto train_examples = load(config.data.train_file, config.data.train_golds_file);
  std::vector<PairedExample> valid_examples;
  if (!config.data.valid_file.empty()) valid_examples = load(config.data.valid_file, config.data.valid_golds_file);
  return train_on_examples(config, options, train_examples, valid_examples, tokenizer_file, pad_id);
}

}  // namespace percetrain
