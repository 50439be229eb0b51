// The training recipe: set up (run folder, plan, resume point, model, optimizer, logs), loop over
// optimizer steps (log, validate, checkpoint, stop on a signal), save the final model. The pieces
// live in run_dir, step, checkpoint, metrics_log and master_weights.
#include "percetrain/train/trainer.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>

#include "percetrain/dist/communicator.hpp"
#include "percetrain/dist/grad_reducer.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/train/adapters.hpp"
#include "percetrain/train/checkpoint.hpp"
#include "percetrain/train/fused_adamw.hpp"
#include "percetrain/train/master_weights.hpp"
#include "percetrain/train/metrics_log.hpp"
#include "percetrain/train/objective_inputs.hpp"
#include "percetrain/train/run_dir.hpp"
#include "percetrain/train/step.hpp"
#include "percetrain/train/validation_monitor.hpp"
#include "percetrain/util/checksum.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"
#include "percetrain/util/interrupt.hpp"
#include "percetrain/util/text.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace percetrain {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double quantile(std::vector<float> values, double q) {
  // NaNs have no place in an order (nth_element with them is undefined behaviour): left out.
  values.erase(std::remove_if(values.begin(), values.end(), [](float v) { return std::isnan(v); }), values.end());
  if (values.empty()) return 0.0;
  const size_t k = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  std::nth_element(values.begin(), values.begin() + k, values.end());
  return values[k];
}

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

// Where the run starts: {0, ""} fresh, else the checkpoint to resume from.
std::pair<int64_t, std::string> choose_start(const JobConfig& config, const TrainOptions& options, RunDirectory& run,
                                             const Checkpointer& checkpoints) {
  const std::string out_dir = run.path();
  const bool resume = options.resume || config.train.resume == ResumePolicy::kAuto;
  const auto found = checkpoints.complete();
  if (!resume || found.empty()) {
    // A fresh run: nothing in the folder may look like a run that is not recorded as ours.
    run.refuse_foreign_run_files();
    if (options.resume) fail(out_dir, "--resume was given but there is no checkpoint to resume from");
    if (run.holds_run()) {
      if (!options.overwrite && found.empty() && config.train.resume == ResumePolicy::kAuto) {
        std::fprintf(stderr, "%s: the earlier run here wrote no checkpoint; starting over\n", out_dir.c_str());
      } else if (!options.overwrite) {
        fail(out_dir,
             "holds an earlier run" +
                 (found.empty() ? std::string() : " (newest checkpoint: step " + std::to_string(found.rbegin()->first) + ")"),
             "continue it with --resume, or start over with --overwrite, which removes only the files that run wrote");
      }
      run.remove_recorded_run();
    }
    return {0, ""};
  }
  // The newest checkpoint whose files match their checksums.
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    const std::string problem = checkpoints.verify(it->second);
    if (problem.empty()) return *it;
    std::string earlier;
    for (auto e = std::next(it); e != found.rend() && earlier.empty(); ++e)
      if (checkpoints.verify(e->second).empty()) earlier = e->second;
    if (config.train.resume != ResumePolicy::kAuto)
      fail(it->second, "is damaged: " + problem,
           earlier.empty() ? "no earlier checkpoint is intact either; start over with --overwrite"
                           : "the earlier " + earlier + " is intact: move the damaged one away, or resume with --set "
                             "train.resume=auto, which falls back to it");
    std::fprintf(stderr, "warning: %s is damaged (%s); falling back to an earlier checkpoint\n", it->second.c_str(),
                 problem.c_str());
  }
  fail(out_dir, "no checkpoint is intact", "start over with --overwrite");
}

// What the checkpoint recorded must be what this run would do.
void check_resume_matches(const JobConfig& config, const Checkpointer& checkpoints, const std::string& dir,
                          int64_t world_size, int64_t zero) {
  const TrainerState state = checkpoints.read_state(dir);
  // Sharded optimizer state belongs to its rank layout; replicated state resumes on any number.
  if ((state.zero > 0 || zero > 0) && (state.world_size != world_size || state.zero != zero))
    fail(dir,
         "was written by " + std::to_string(state.world_size) + " ranks with train.distributed.zero " +
             std::to_string(state.zero) + "; this run has " + std::to_string(world_size) + " with zero " +
             std::to_string(zero),
         "sharded optimizer state resumes only with the same number of ranks and zero stage; relaunch with " +
             std::to_string(state.world_size) + " ranks");
  if (!state.job_config.empty()) {
    const auto mismatches = resume_config_mismatches(state.job_config, job_config_to_json(config));
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
  // One process unless a launcher (torchrun) set WORLD_SIZE > 1; then every rank runs this, and
  // rank 0 alone owns the run folder, the logs and the checkpoints.
  const DistEnv env = DistEnv::from_environment();
  if (config.lora.per_user && env.distributed())
    fail(config.file + ": lora.per_user", "trains users one after another in one process, not on several ranks",
         "launch it without torchrun");
  if (config.lora.per_user) return train_user_adapters(config, options, train_examples, valid_examples, tokenizer_path, pad_id);
  // ---- set up: ranks, run folder, plan, resume point, model, optimizer, logs ---------------------
  const TrainSection& train = config.train;
  const bool lora = config.lora.trains();  // the base stays frozen; checkpoints, best/ and final/ hold the adapter
  if (train_examples.empty()) fail(config.file + ": data.train_file", "holds no usable training examples");
  const auto device = env.distributed() ? device_for_local_rank(config.model.device, env.local_rank)
                                        : parse_device(config.model.device);
  const auto dtype = training_dtype(config, device);
  const auto comm = make_communicator(env, train.distributed.backend, train.distributed.timeout_s, device);
  const bool root = comm->is_root(), distributed = comm->distributed();
  if (distributed && (train.eval_generate.every > 0 || train.best_metric != BestMetric::kNone ||
                      train.early_stopping_patience > 0))
    fail(config.file + ": train.eval_generate / best_metric / early_stopping_patience",
         "are not available with several ranks yet", "train on one rank to use them, or leave them unset");
  // Each rank would draw its own dropout masks, and a checkpoint records one generator.
  if (distributed && lora && config.lora.dropout > 0)
    fail(config.file + ": lora.dropout", "must be 0 when training adapters on several ranks",
         "set lora.dropout 0, or train on one rank");
  const int64_t zero = distributed ? train.distributed.zero : 0;
  ProgressLine progress(options.progress && root);
  StepPlan plan(train_examples.size(), train.batch_size, train.seed, train.epochs, train.max_steps);
  const int64_t total_steps = plan.total_steps();
  const std::string out_dir = fs::absolute(fs::path(config.output.dir)).lexically_normal().string();

  std::unique_ptr<RunDirectory> run;
  std::unique_ptr<Checkpointer> checkpoints;
  int64_t start_step = 0;
  std::string resume_from;
  std::exception_ptr setup_error;
  try {
    if (root) {
      run = std::make_unique<RunDirectory>(out_dir);
      checkpoints = std::make_unique<Checkpointer>(*run, train.keep_last, tokenizer_path);
      std::tie(start_step, resume_from) = choose_start(config, options, *run, *checkpoints);
      if (!resume_from.empty()) check_resume_matches(config, *checkpoints, resume_from, comm->world_size(), zero);
      else if (const std::string made = prepare_model_folder(config.model, tokenizer_path, true); !made.empty())
        progress.line(made);
    }
  } catch (...) {
    if (!distributed) throw;
    setup_error = std::current_exception();
  }
  if (distributed) {
    // Rank 0's verdict for everyone (this is also the barrier after it created the model).
    std::vector<int64_t> verdict = {setup_error ? 1 : 0, start_step};
    comm->all_reduce(verdict, ScalarReduce::kMax);
    if (setup_error) std::rethrow_exception(setup_error);
    if (verdict[0]) fail("rank " + std::to_string(comm->rank()), "rank 0 could not start the run (its error says why)");
    start_step = verdict[1];
    if (start_step > 0) resume_from = (fs::path(out_dir) / checkpoint_name(start_step)).string();
  }
  if (train.batch_size > static_cast<int64_t>(train_examples.size()))
    progress.line("warning: train.batch_size " + std::to_string(train.batch_size) + " is larger than the " +
                  std::to_string(train_examples.size()) + " training examples: each step sees every example once");

  LoadedModel loaded = load_causal_lm(resume_from.empty() || lora ? config.model.path : resume_from, device, dtype);
  CausalLMImpl& model = *loaded.model;
  check_token_ids_fit(train_examples, tokenizer_path, -1, loaded.config.vocab_size, loaded.folder);
  model.train();
  model.set_gradient_checkpointing(train.gradient_checkpointing);
  const std::string adapters = lora ? attach_run_adapters(model, config, resume_from) : "";
  if (lora && checkpoints)
    checkpoints->set_model_writer([base = config.model.path](CausalLMImpl& m, const std::string& dir) {
      return write_adapter_checkpoint_files(m, dir, base);
    });
  // final/ and best/: a Hugging Face model folder, or for LoRA runs a PEFT adapter folder.
  auto write_final_model = [&](CausalLMImpl& m, const std::string& dir) {
    if (lora) {
      write_lora_adapter(m, dir, config.model.path);
      return;
    }
    SaveOptions save;
    save.tokenizer_source = tokenizer_path;
    write_model_files(m, dir, save);
  };
  const auto objective = make_objective(config.objective);
  LoadedModel reference = load_reference_model(config, *objective, device, dtype, train_examples, tokenizer_path);
  // Mixed precision: a bf16 model computes forward and backward; the optimizer updates fp32
  // master copies and writes them back. Without them, updates below bf16's resolution (8
  // mantissa bits: lr 5e-6 on a weight of 0.02 is one part in 4000) would round to nothing.
  // Under ZeRO the reducer's fp32 shard plays that part.
  const NamedTensors trainable = trainable_parameters(model);
  MasterWeights masters(trainable, train.master_weights && zero == 0);
  std::unique_ptr<GradReducer> reducer;
  std::unique_ptr<FusedAdamW> optimizer;
  if (distributed) {
    std::vector<torch::Tensor> params;
    for (const auto& [name, tensor] : trainable) params.push_back(tensor);
    broadcast_tensors(*comm, params);  // replicas start equal
    GradReducerOptions reducer_options;
    reducer_options.bucket_mib = train.distributed.bucket_mib;
    reducer_options.overlap = train.distributed.overlap;
    reducer_options.zero_stage = static_cast<int>(zero);
    reducer = std::make_unique<GradReducer>(*comm, params, zero == 0 ? masters.parameters() : std::vector<torch::Tensor>{},
                                            reducer_options);
  }
  if (zero > 0) {
    // This rank's 1/N of the flat parameter space, each piece decayed as its parameter is.
    std::vector<torch::Tensor> decayed, not_decayed;
    const auto& pieces = reducer->shard_pieces();
    for (size_t i = 0; i < pieces.size(); ++i) {
      const auto& [name, tensor] = trainable[pieces[i].param];
      (is_decayed(name, tensor.dim()) ? decayed : not_decayed).push_back(reducer->shard()[i]);
    }
    optimizer = make_optimizer(std::move(decayed), std::move(not_decayed), train);
  } else {
    optimizer = make_optimizer(masters, train);
  }
  if (!resume_from.empty()) {
    if (zero > 0) restore_shard_state(resume_from, comm->rank(), *optimizer, reducer->shard_values());
    else restore_training_state(resume_from, *optimizer, masters);
  }
  reset_peak_memory(device);

  std::optional<MetricsLog> metrics;
  std::optional<ValidationMonitor> monitor;
  const std::string effective_config = job_config_to_json(config);
  if (root) {
    run->record_file("metrics.jsonl");
    run->record_file("job_config.json");
    metrics.emplace(run->file("metrics.jsonl"), start_step);
    write_file_atomic(run->file("job_config.json"), effective_config, "the effective config");
    monitor.emplace(config, *run, valid_examples, tokenizer_path, metrics->path(), loaded.config.eos_token_id,
                    write_final_model);
  }
  int64_t response_tokens = 0;
  for (const auto& e : train_examples) response_tokens += scored_response_tokens(e);
  progress.line(describe_loaded_model(loaded) + (masters.active() ? " (fp32 master weights)" : ""));
  if (lora) {
    progress.line(adapters);
    if (const std::string warning = vllm_rank_warning(lora_settings(model).rank); !warning.empty())
      progress.line(warning);
  }
  if (distributed)
  {
    char line[200];
    std::snprintf(line, sizeof(line), "%d ranks (%s), zero %lld, gradient buckets of %g MiB%s", comm->world_size(),
                  comm->backend().c_str(), static_cast<long long>(zero), train.distributed.bucket_mib,
                  train.distributed.overlap ? " reduced during backward" : "");
    progress.line(line);
  }
  progress.line("train: " + std::to_string(train_examples.size()) + " examples (" + std::to_string(response_tokens) +
                " response tokens), " + std::to_string(total_steps) + " steps of " + std::to_string(train.batch_size) +
                " (micro-batches of " + std::to_string(train.micro_batch_size) + "), objective " + objective->name() +
                (start_step > 0 ? ", resuming after step " + std::to_string(start_step) + " from " + resume_from : "") +
                "; output " + out_dir);

  StepSettings settings = StepSettings::from(config, pad_id, device);
  if (reference.model) settings.reference = reference.model.get();
  TrainStep step(model, *objective, masters, *optimizer, settings, comm.get(), reducer.get());
  TrainerState state_template{0, total_steps, plan.steps_per_epoch(), train.seed, objective->name(),
                              static_cast<int64_t>(train_examples.size()), comm->world_size(), zero,
                              effective_config, data_checksums(config), {}};
  // Rank 0 writes the checkpoint; under ZeRO every rank adds its shard to the staging folder
  // between two barriers, and the third says it is published.
  auto save_checkpoint = [&](int64_t done) {
    TrainerState state = state_template;
    state.step = done;
    const auto* full_optimizer = zero == 0 ? optimizer.get() : nullptr;
    if (!distributed) return checkpoints->save(model, full_optimizer, masters, state);
    auto add_my_files = [&](const std::string& staging) {
      comm->barrier();
      if (zero > 0) save_shard_state(staging, comm->rank(), *optimizer, reducer->shard_values());
      comm->barrier();
    };
    const std::string name = checkpoint_name(done);
    std::string path = (fs::path(out_dir) / name).string();
    if (root) path = checkpoints->save(model, full_optimizer, masters, state, add_my_files);
    else add_my_files((fs::path(out_dir) / (name + ".partial")).string());
    comm->barrier();
    return path;
  };

  // ---- the loop ------------------------------------------------------------------------------
  TrainSummary summary;
  summary.total_steps = total_steps;
  summary.steps_done = start_step;
  const auto t_start = Clock::now();
  int64_t tokens_since_start = 0;
  for (int64_t s = start_step; s < total_steps && !(monitor && monitor->exhausted()); ++s) {
    const double lr = learning_rate_at(train, s, total_steps);
    const auto t_step = Clock::now();
    const StepResult r = step.run(train_examples, plan.examples(s), lr);
    if (!r.finite) {
      std::string intact;
      if (checkpoints) {
        const auto saved = checkpoints->complete();
        for (auto it = saved.rbegin(); it != saved.rend() && intact.empty(); ++it)
          if (checkpoints->verify(it->second).empty()) intact = it->second;
      }
      fail("train step " + std::to_string(s + 1),
           "the loss is not finite" + (distributed ? std::string(" on a rank") : " (" + std::to_string(r.loss) + ")"),
           intact.empty() ? "lower train.lr or check the data; no intact checkpoint to resume from yet"
                          : "the newest intact checkpoint is " + intact + "; lower train.lr and resume from it");
    }
    const double step_seconds = seconds_since(t_step);
    const int64_t done = s + 1;
    summary.steps_done = done;
    summary.last_loss = r.loss;
    tokens_since_start += r.processed;

    // Log.
    if (metrics && (done % train.log_every == 0 || done == total_steps)) {
      json row = step_row(done, plan.steps_per_epoch(), r, lr, step_seconds, peak_memory_mib(device));
      if (reducer) {
        const ReducerStats& rs = reducer->stats();
        row["comm_bytes"] = rs.bytes + rs.gather_bytes;
        row["comm_seconds"] = rs.comm_seconds + rs.gather_seconds;
        row["comm_hidden"] = rs.hidden_fraction();
      }
      metrics->append(row);
    }
    const double elapsed = seconds_since(t_start);
    const double eta = elapsed / static_cast<double>(done - start_step) * static_cast<double>(total_steps - done);
    // The objective's own (weighted) loss first, then the plain CE of the same tokens: PerCE's
    // weights follow the PIR, so its loss can rise while CE falls.
    char text[256];
    std::snprintf(text, sizeof(text), "step %lld/%lld | %s loss %.4f | ce %.4f | pir %+.3f | lr %.2e | %.0f tok/s | ETA %s",
                  (long long)done, (long long)total_steps, objective->name().c_str(), r.loss, r.ce(), r.pir_mean(), lr,
                  elapsed > 0 ? tokens_since_start / elapsed : 0.0, format_duration(eta).c_str());
    progress.update(text, done % train.log_every == 0 && !progress.live());

    // Validate.
    const bool last = done == total_steps;
    const bool end_of_epoch = done % plan.steps_per_epoch() == 0;
    if (!valid_examples.empty() &&
        ((train.eval_every > 0 && done % train.eval_every == 0) || (train.eval_every == 0 && end_of_epoch) || last)) {
      model.eval();
      const auto v = validate_examples(model, *objective, valid_examples, settings, comm.get());
      model.train();
      const json row = {{"step", done}, {"valid_ce", v.ce}, {"valid_loss", v.objective}, {"valid_pir_mean", v.pir_mean},
                        {"valid_response_tokens", v.tokens}};
      if (metrics) metrics->append(row);
      if (monitor) monitor->observe(row);
      char line[200];
      std::snprintf(line, sizeof(line), "valid at step %lld: ce %.4f | %s loss %.4f | mean PIR %+.4f", (long long)done,
                    v.ce, objective->name().c_str(), v.objective, v.pir_mean);
      progress.line(line);
    }

    // Validate by generating, keep the best model, stop early (train.eval_generate, best_metric).
    const bool stop_early = monitor && monitor->after_step(model, done, last, *metrics, progress) && !last;

    // Checkpoint; stop after --stop-after or a signal (any rank's: all stop at the same step).
    int signal = interrupt_signal();
    if (distributed) {
      std::vector<int64_t> any_signal = {signal};
      comm->all_reduce(any_signal, ScalarReduce::kMax);
      signal = static_cast<int>(any_signal[0]);
    }
    const bool stop_now = (options.stop_after_steps > 0 && done >= options.stop_after_steps && !last) || (signal && !last);
    if ((train.save_every > 0 && done % train.save_every == 0) || last || stop_now || stop_early)
      summary.last_checkpoint = save_checkpoint(done);
    if (signal && !last)
      throw Interrupted(signal, "stopped after step " + std::to_string(done) + " of " + std::to_string(total_steps) +
                                    "; saved " + summary.last_checkpoint,
                        "");
    if (stop_now) {
      progress.line("stopped after step " + std::to_string(done) + "; continue with --resume");
      return summary;
    }
  }
  if (monitor && monitor->exhausted()) {
    summary.stopped_early = monitor->stop_reason();
    progress.line(summary.stopped_early + "; saving the model of step " + std::to_string(summary.steps_done) + " as final");
  }

  // ---- save ----------------------------------------------------------------------------------
  summary.final_model_dir = (fs::path(out_dir) / "final").string();
  if (root) {
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
  const std::string tokenizer_file = tokenizer_path(config);
  auto tokenizer = load_tokenizer(tokenizer_file);
  const bool root = DistEnv::from_environment().rank == 0;  // one rank reports for all
  const int64_t pad_id = tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;

  auto load = [&](const std::string& file, const std::string& golds) {
    DatasetStats stats;
    auto examples = load_paired_examples(config.data, file, golds, *tokenizer, &stats);
    if (options.progress && root) {
      std::fprintf(stderr, "%s: %lld records -> %lld examples (%lld skipped, %lld with the profile cut, %lld with the input cut)\n",
                   file.c_str(), (long long)stats.records, (long long)stats.examples, (long long)stats.skipped,
                   (long long)stats.truncated_profile, (long long)stats.truncated_input);
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

std::vector<std::string> resume_config_mismatches(const std::string& recorded_text, const std::string& current_text) {
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
