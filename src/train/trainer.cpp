// The training recipe of one model (or one adapter), as named phases (train/phases.hpp): the run
// folder and where to start, the model and optimizer, checkpoints and logs, the step loop, the
// final model. Per-user adapter runs (per_user.cpp) and `bench` are built from the same phases.
#include "percetrain/train/trainer.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>

#include "percetrain/model/hf_folder.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/train/adapters.hpp"
#include "percetrain/train/checkpoint.hpp"
#include "percetrain/train/fused_adamw.hpp"
#include "percetrain/train/master_weights.hpp"
#include "percetrain/train/metrics_log.hpp"
#include "percetrain/train/objective_inputs.hpp"
#include "percetrain/train/per_user.hpp"
#include "percetrain/train/phases.hpp"
#include "percetrain/train/run_dir.hpp"
#include "percetrain/train/step.hpp"
#include "percetrain/train/validation_monitor.hpp"
#include "percetrain/util/checksum.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/log.hpp"
#include "percetrain/util/interrupt.hpp"
#include "percetrain/util/text.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace percetrain {
namespace {

// Keys of the effective config that may change between a checkpoint and its resumption: they do
// not change what the optimizer steps compute.
bool may_change_on_resume(const std::string& key) {
  static const std::vector<std::string> free = {
      "train.log_every", "train.eval_every", "train.save_every", "train.keep_last", "train.resume",
      "model.device",    "output.dir",       "data.valid_file",  "data.valid_golds_file",
      "data.test_file",  "data.test_golds_file", "train.distributed.backend", "train.distributed.timeout_s",
      "train.distributed.bucket_mib", "train.distributed.overlap", "train.distributed.zero"};
  return key.rfind("generate.", 0) == 0 || std::find(free.begin(), free.end(), key) != free.end();
}

// What the checkpoint recorded must be what this run would do, up to its length: a run may be
// resumed to go on longer (train.max_steps or train.epochs raised), never to end before it.
void check_resume_matches(const JobConfig& config, const std::string& dir, int64_t world_size, int64_t zero,
                          int64_t total_steps) {
  const TrainerState state = Checkpointer::read_state(dir);
  if (state.step > total_steps)
    fail(dir, "is at step " + std::to_string(state.step) + ", beyond the " + std::to_string(total_steps) +
                  " steps this config trains",
         "resume with train.max_steps / train.epochs at least as large as when it was written");
  // Sharded optimizer state belongs to its rank layout; replicated state resumes on any number.
  if ((state.zero > 0 || zero > 0) && (state.world_size != world_size || state.zero != zero))
    fail(dir,
         "was written by " + std::to_string(state.world_size) + " ranks with train.distributed.zero " +
             std::to_string(state.zero) + "; this run has " + std::to_string(world_size) + " with zero " +
             std::to_string(zero),
         "sharded optimizer state resumes only with the same number of ranks and zero stage; relaunch with " +
             std::to_string(state.world_size) + " ranks");
  if (!state.job_config.empty()) {
    const auto mismatches = resume_config_mismatches(state.job_config, job_config_to_json(config), true);
    if (!mismatches.empty())
      fail(dir, "was written by a run with other settings: " + join(mismatches),
           "resume with the settings it was written with, or start a new run in another output.dir (or --overwrite)");
  }
  for (const auto& [key, sha] : data_checksums(config)) {
    const auto it = state.data_sha256.find(key);
    if (it != state.data_sha256.end() && it->second != sha)
      fail(dir, key + " has changed since this checkpoint was written",
           "resume with the data it was trained on, or start a new run");
  }
}

// Rank 0: the step to start after (0: a fresh run) and its checkpoint, the newest intact one.
std::pair<int64_t, std::string> choose_start(const JobConfig& config, const TrainOptions& options, RunDirectory& run,
                                             const Checkpointer& checkpoints, int64_t world_size, int64_t zero,
                                             int64_t total_steps) {
  const auto found = checkpoints.complete();
  const std::string newest = found.empty() ? "" : "newest checkpoint: step " + std::to_string(found.rbegin()->first);
  if (!claim_run_folder(run, RunKind::kModel, !found.empty(), options, config.train.resume, newest)) return {0, ""};
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    const std::string problem = Checkpointer::verify(it->second);
    if (problem.empty()) {
      check_resume_matches(config, it->second, world_size, zero, total_steps);
      return *it;
    }
    std::string earlier;
    for (auto e = std::next(it); e != found.rend() && earlier.empty(); ++e)
      if (Checkpointer::verify(e->second).empty()) earlier = e->second;
    if (config.train.resume != ResumePolicy::kAuto)
      fail(it->second, "is damaged: " + problem,
           earlier.empty() ? "no earlier checkpoint is intact either; start over with --overwrite"
                           : "the earlier " + earlier + " is intact: move the damaged one away, or resume with --set "
                             "train.resume=auto, which falls back to it");
    log_warning(it->second + " is damaged (" + problem + "); falling back to an earlier checkpoint");
  }
  fail(run.path(), "no checkpoint is intact", "start over with --overwrite");
}

}  // namespace

TrainSummary train_on_examples(const JobConfig& config, const TrainOptions& options,
                               const std::vector<PairedExample>& train_examples,
                               const std::vector<PairedExample>& valid_examples, const std::string& tokenizer_path,
                               int64_t pad_id) {
  if (config.lora.per_user) return train_user_adapters(config, options, train_examples, valid_examples, tokenizer_path, pad_id);
  if (train_examples.empty()) fail(config.file + ": data.train_file", "holds no usable training examples");
  const TrainSection& train = config.train;
  const bool lora = config.lora.trains();  // the base stays frozen; checkpoints, best/ and final/ hold the adapter
  Placement place = place_run(config);
  Communicator& comm = *place.comm;
  const int64_t zero = comm.distributed() ? train.distributed.zero : 0;
  ProgressLine progress(options.progress && place.root());
  StepPlan plan(train_examples.size(), train.batch_size, train.seed, train.epochs, train.max_steps);
  const int64_t total_steps = plan.total_steps();
  const std::string out_dir = fs::absolute(fs::path(config.output.dir)).lexically_normal().string();

  // ---- the run folder: rank 0 claims it and chooses where to start; the others follow ---------
  std::unique_ptr<RunDirectory> run;
  std::string resume_from;
  const int64_t start_step = comm.decided_by_root(
      [&]() -> std::vector<int64_t> {
        run = std::make_unique<RunDirectory>(out_dir);
        const Checkpointer checkpoints(run.get(), comm, out_dir, train.keep_last, tokenizer_path);
        int64_t step = 0;
        std::tie(step, resume_from) =
            choose_start(config, options, *run, checkpoints, comm.world_size(), zero, total_steps);
        if (resume_from.empty()) {
          if (const std::string made = prepare_model_folder(config.model, tokenizer_path, true); !made.empty())
            progress.line(made);
        } else if (const int64_t before = Checkpointer::read_state(resume_from).total_steps;
                   before > 0 && before != total_steps) {
          progress.line("extending the run from " + std::to_string(before) + " to " + std::to_string(total_steps) +
                        " steps: from step " + std::to_string(step + 1) + " on, the learning rate follows the " +
                        std::to_string(total_steps) + "-step schedule");
        }
        return {step};
      },
      1, "start the run")[0];
  if (start_step > 0 && resume_from.empty()) resume_from = checkpoint_path(out_dir, start_step);
  if (train.batch_size > static_cast<int64_t>(train_examples.size()))
    progress.line("warning: train.batch_size " + std::to_string(train.batch_size) + " is larger than the " +
                  std::to_string(train_examples.size()) + " training examples: each step sees every example once");

  // ---- the model (its adapters) and the optimizer -----------------------------------------------
  ModelForTraining m = load_model_for_training(config, resume_from.empty() || lora ? config.model.path : resume_from,
                                               place, train_examples, tokenizer_path);
  CausalLMImpl& model = *m.loaded.model;
  const std::string adapters = lora ? attach_run_adapters(model, config, resume_from) : "";
  Optimization optimization = build_optimization(model, train, comm);
  if (!resume_from.empty()) optimization.restore(resume_from, comm.rank());
  reset_peak_memory(place.device);

  // ---- checkpoints and logs -----------------------------------------------------------------------
  Checkpointer checkpoints(run.get(), comm, out_dir, train.keep_last, tokenizer_path);
  if (lora)
    checkpoints.set_model_writer([base = config.model.path](CausalLMImpl& mod, const std::string& dir) {
      return write_adapter_checkpoint_files(mod, dir, base);
    });
  if (zero > 0)
    checkpoints.set_shard_writer([&](const std::string& staging) { optimization.save_shard(staging, comm.rank()); });
  // final/ and best/: a Hugging Face model folder, or for LoRA runs a PEFT adapter folder.
  auto write_final_model = [&](CausalLMImpl& mod, const std::string& dir) {
    if (lora) {
      write_lora_adapter(mod, dir, config.model.path);
      return;
    }
    SaveOptions save;
    save.tokenizer_source = tokenizer_path;
    save.model_source = config.model.path;
    write_model_files(mod, dir, save);
  };
  const std::string effective_config = job_config_to_json(config);
  std::unique_ptr<MetricsLog> metrics;
  if (run) metrics = open_logs(*run, effective_config, start_step);
  // Validation by generation, best/ and early stopping: every rank generates its share and
  // follows the same decisions; rank 0 logs and writes best/.
  ValidationMonitor monitor(config, run.get(), comm, valid_examples, tokenizer_path, metrics ? metrics->path() : "",
                            m.loaded.config.eos_token_id, write_final_model);
  int64_t response_tokens = 0;
  for (const auto& e : train_examples) response_tokens += scored_response_tokens(e);
  progress.line(describe_loaded_model(m.loaded) + (optimization.masters->active() ? " (fp32 master weights)" : ""));
  if (lora) {
    progress.line(adapters);
    if (const std::string warning = vllm_rank_warning(lora_settings(model).rank); !warning.empty())
      progress.line(warning);
  }
  if (comm.distributed()) {
    char line[200];
    std::snprintf(line, sizeof(line), "%d ranks (%s), zero %lld, gradient buckets of %g MiB%s", comm.world_size(),
                  comm.backend().c_str(), static_cast<long long>(zero), train.distributed.bucket_mib,
                  train.distributed.overlap ? " reduced during backward" : "");
    progress.line(line);
  }
  progress.line("train: " + std::to_string(train_examples.size()) + " examples (" + std::to_string(response_tokens) +
                " response tokens), " + std::to_string(total_steps) + " steps of " + std::to_string(train.batch_size) +
                " (micro-batches of " + std::to_string(train.micro_batch_size) + "), objective " + m.objective->name() +
                (start_step > 0 ? ", resuming after step " + std::to_string(start_step) + " from " + resume_from : "") +
                "; output " + out_dir);

  // ---- the loop -----------------------------------------------------------------------------------
  StepSettings settings = StepSettings::from(config, pad_id, place.device);
  if (m.reference.model) settings.reference = m.reference.model.get();
  TrainStep step(model, *m.objective, *optimization.optimizer, *optimization.sync, settings, &comm);
  const TrainerState state{0, total_steps, plan.steps_per_epoch(), train.seed, m.objective->name(),
                           static_cast<int64_t>(train_examples.size()), comm.world_size(), zero,
                           effective_config, data_checksums(config), {}};
  LoopStretch stretch;
  stretch.examples = &train_examples;
  stretch.plan = &plan;
  stretch.valid = &valid_examples;
  stretch.start = start_step;
  stretch.stop_after = options.stop_after_steps;
  stretch.save_checkpoint = [&](int64_t done) {
    TrainerState at = state;
    at.step = done;
    return checkpoints.save(model, optimization.replicated_optimizer(), *optimization.masters, at);
  };
  stretch.nonfinite_hint = [&]() -> std::string {
    const std::string intact = run ? checkpoints.newest_intact() : "";
    return intact.empty() ? "lower train.lr or check the data; no intact checkpoint to resume from yet"
                          : "the newest intact checkpoint is " + intact + "; lower train.lr and resume from it";
  };
  StepLoop loop(*m.objective, model, settings, train, comm, total_steps, start_step, metrics.get(), progress,
                &monitor);
  const LoopEnd end = loop.run(step, stretch);

  TrainSummary summary;
  summary.total_steps = total_steps;
  summary.steps_done = end.steps_done;
  summary.last_loss = end.last_loss;
  summary.last_checkpoint = end.last_checkpoint;
  if (end.kind == LoopEnd::kSignalled)
    throw Interrupted(end.signal, "stopped after step " + std::to_string(end.steps_done) + " of " +
                                      std::to_string(total_steps) + "; saved " + end.last_checkpoint,
                      "");
  if (end.kind == LoopEnd::kStopped) {
    progress.line("stopped after step " + std::to_string(end.steps_done) + "; continue with --resume");
    return summary;
  }
  if (end.kind == LoopEnd::kEarlyStopped) {
    summary.stopped_early = monitor.stop_reason();
    progress.line(summary.stopped_early + "; saving the model of step " + std::to_string(summary.steps_done) + " as final");
  }

  // ---- save ---------------------------------------------------------------------------------------
  summary.final_model_dir = (fs::path(out_dir) / "final").string();
  if (run) {
    const std::string staging = run->begin_folder("final");
    write_final_model(model, staging);
    run->publish_folder("final");
    progress.line("done: " + std::to_string(summary.steps_done) + (lora ? " steps; adapter in " : " steps; model in ") +
                  summary.final_model_dir + ", metrics in " + metrics->path());
  }
  return summary;
}

TrainSummary run_training(const JobConfig& config, const TrainOptions& options) {
  if (config.data.train_file.empty()) fail(config.file + ": data.train_file", "is required for training");
  check_launch(config, DistEnv::from_environment().world_size);
  const std::string tokenizer_file = tokenizer_path(config);
  auto tokenizer = load_tokenizer(tokenizer_file);
  const bool root = DistEnv::from_environment().rank == 0;  // one rank reports for all
  const int64_t pad_id = tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;

  auto load = [&](const std::string& file, const std::string& golds) {
    DatasetStats stats;
    auto examples = load_paired_examples(config.data, file, golds, *tokenizer, &stats);
    if (options.progress && root) {
      log_note(file + ": " + std::to_string(stats.records) + " records -> " + std::to_string(stats.examples) +
               " examples (" + std::to_string(stats.skipped) + " skipped, " + std::to_string(stats.truncated_profile) +
               " with the profile cut, " + std::to_string(stats.truncated_input) + " with the input cut)");
    }
    return examples;
  };
  auto train_examples = load(config.data.train_file, config.data.train_golds_file);
  std::vector<PairedExample> valid_examples;
  if (!config.data.valid_file.empty()) valid_examples = load(config.data.valid_file, config.data.valid_golds_file);
  prepare_examples_for_objective(config, *tokenizer, &train_examples);
  prepare_examples_for_objective(config, *tokenizer, &valid_examples);
  return train_on_examples(config, options, train_examples, valid_examples, tokenizer_file, pad_id);
}

std::map<std::string, std::string> data_checksums(const JobConfig& config) {
  std::map<std::string, std::string> out;
  if (config.data.train_file.empty()) return out;  // examples handed over in memory (tests)
  out["data.train_file"] = sha256_file(config.data.train_file);
  if (!config.data.train_golds_file.empty()) out["data.train_golds_file"] = sha256_file(config.data.train_golds_file);
  return out;
}

std::vector<std::string> resume_config_mismatches(const std::string& recorded_text, const std::string& current_text,
                                                  bool may_extend) {
  const json recorded = json::parse(recorded_text), current = json::parse(current_text);
  std::vector<std::string> out;
  std::function<void(const json&, const std::string&)> compare = [&](const json& node, const std::string& prefix) {
    for (const auto& [key, value] : node.items()) {
      const std::string name = prefix.empty() ? key : prefix + "." + key;
      if (value.is_object()) {
        compare(value, name);
        continue;
      }
      if (may_change_on_resume(name)) continue;
      if (may_extend && (name == "train.max_steps" || name == "train.epochs")) continue;
      std::string pointer = "/" + name;
      std::replace(pointer.begin(), pointer.end(), '.', '/');
      // A key the checkpoint's config lacks came with a later percetrain: nothing to compare.
      if (!recorded.contains(json::json_pointer(pointer))) continue;
      const json before = recorded.at(json::json_pointer(pointer));
      if (before != value) out.push_back(name + " " + before.dump() + " -> " + value.dump());
    }
  };
  compare(current, "");
  return out;
}

}  // namespace percetrain
