// Per-user adapter runs: the users one after another, each a stretch of the shared step loop.
#include "percetrain/train/per_user.hpp"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "percetrain/model/hf_folder.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/train/adapters.hpp"
#include "percetrain/train/fused_adamw.hpp"
#include "percetrain/train/master_weights.hpp"
#include "percetrain/train/metrics_log.hpp"
#include "percetrain/train/phases.hpp"
#include "percetrain/train/run_dir.hpp"
#include "percetrain/train/step.hpp"
#include "percetrain/util/checksum.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/log.hpp"
#include "percetrain/util/file.hpp"
#include "percetrain/util/interrupt.hpp"
#include "percetrain/util/json.hpp"
#include "percetrain/util/text.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace percetrain {
namespace {

// FNV-1a of the user id, mixed into train.seed: a user's adapter and step plan depend only on the
// seed, its id and its data, not on which other users the data holds.
uint64_t user_seed(uint64_t seed, const std::string& user) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : user) h = (h ^ c) * 1099511628211ull;
  return seed ^ h;
}

std::vector<PairedExample> subset(const std::vector<PairedExample>& examples, const std::vector<size_t>& indices) {
  std::vector<PairedExample> out;
  out.reserve(indices.size());
  for (size_t i : indices) out.push_back(examples[i]);
  return out;
}

std::string adapter_folder(const std::string& user) { return "adapters/" + user; }

// The users whose adapters an earlier run left intact, as a prefix of `users`: each adapter's
// files must match the checksums users.json recorded.
size_t intact_prefix(const RunDirectory& run, const json& state, const std::vector<std::string>& users) {
  size_t done = 0;
  const json& recorded = state["users"];
  for (; done < users.size(); ++done) {
    const std::string& user = users[done];
    if (!recorded.contains(user)) break;
    const fs::path folder = run.file(adapter_folder(user));
    const auto files = recorded[user].value("files_sha256", std::map<std::string, std::string>{});
    const bool intact = !run.folder_files(adapter_folder(user)).empty() && !files.empty() &&
                        checksum_problem(folder.string(), files).empty();
    if (!intact) {
      log_note(run.path() + ": the adapter of user " + user + " is missing or damaged; training it again");
      break;
    }
  }
  return done;
}

// The state of the earlier per-user run in `run`, checked against this one's config and data.
json read_earlier_state(const RunDirectory& run, const std::string& effective_config,
                        const std::map<std::string, std::string>& data_sha) {
  const std::string path = run.file(kPerUserStateFile);
  const json recorded = read_json_file(path);
  if (!recorded.is_object() || recorded.value("format", "") != kPerUserStateFormat || !recorded.contains("users") ||
      !recorded["users"].is_object())
    fail(path, "is not the state of a per-user run", "start over with --overwrite");
  const auto mismatches = resume_config_mismatches(recorded["job_config"].dump(), effective_config);
  if (!mismatches.empty())
    fail(path, "was written by a run with other settings: " + join(mismatches),
         "resume with the settings it was written with, or start a new run in another output.dir (or --overwrite)");
  if (recorded.value("data_sha256", std::map<std::string, std::string>{}) != data_sha)
    fail(path, "the training data has changed since the earlier run",
         "resume with the data it was trained on, or start a new run");
  return recorded;
}

}  // namespace

TrainSummary train_user_adapters(const JobConfig& config, const TrainOptions& options,
                                 const std::vector<PairedExample>& train_examples,
                                 const std::vector<PairedExample>& valid_examples, const std::string& tokenizer_path,
                                 int64_t pad_id) {
  // ---- the users and their steps ----------------------------------------------------------------
  const TrainSection& train = config.train;
  if (train_examples.empty()) fail(config.file + ": data.train_file", "holds no usable training examples");
  const std::string train_file = config.data.train_file.empty() ? "training data" : config.data.train_file;
  const auto by_user = examples_by_user(train_examples, train_file);
  const auto valid_by_user = valid_examples.empty()
                                 ? std::map<std::string, std::vector<size_t>>{}
                                 : examples_by_user(valid_examples, config.data.valid_file);
  std::vector<std::string> users;
  std::vector<StepPlan> plans;
  for (const auto& [user, indices] : by_user) {
    if (const std::string problem = user_folder_problem(user); !problem.empty())
      fail(train_file + ": " + train_examples[indices.front()].id,
           "user id " + quote_name(user) + " cannot name its adapter folder: " + problem,
           "set data.user_key to a field with plain ids (letters, digits, _ - . @ + =)");
    users.push_back(user);
    plans.emplace_back(indices.size(), train.batch_size, user_seed(train.seed, user), train.epochs, train.max_steps);
  }
  // Step numbers in metrics.jsonl count over all users.
  std::vector<int64_t> first_step(users.size() + 1, 0);
  for (size_t u = 0; u < users.size(); ++u) first_step[u + 1] = first_step[u] + plans[u].total_steps();
  const int64_t total_steps = first_step.back();
  Placement place = place_run(config);
  ProgressLine progress(options.progress);

  // ---- the run folder: the users an earlier run finished are kept ---------------------------------
  RunDirectory run(config.output.dir);
  const std::string effective_config = job_config_to_json(config);
  const auto data_sha = data_checksums(config);
  json state = {{"format", kPerUserStateFormat},
                {"base_model", config.model.path},
                {"job_config", json::parse(effective_config)},
                {"data_sha256", data_sha},
                {"users", json::object()}};
  size_t start = 0;
  const bool earlier = run.recorded(kPerUserStateFile) && fs::exists(run.file(kPerUserStateFile));
  if (claim_run_folder(run, RunKind::kPerUser, earlier, options, train.resume)) {
    const json recorded = read_earlier_state(run, effective_config, data_sha);
    start = intact_prefix(run, recorded, users);
    for (size_t u = 0; u < start; ++u) state["users"][users[u]] = recorded["users"][users[u]];
  }
  if (start == 0)
    if (const std::string made = prepare_model_folder(config.model, tokenizer_path, true); !made.empty())
      progress.line(made);

  // ---- the base (loaded once), the logs -------------------------------------------------------------
  ModelForTraining m = load_model_for_training(config, config.model.path, place, train_examples, tokenizer_path);
  CausalLMImpl& model = *m.loaded.model;
  StepSettings settings = StepSettings::from(config, pad_id, place.device);
  if (m.reference.model) settings.reference = m.reference.model.get();
  const auto metrics = open_logs(run, effective_config, first_step[start]);
  run.record_file(kPerUserStateFile);
  write_file_atomic(run.file(kPerUserStateFile), state.dump(1) + "\n", "the per-user state");
  progress.line(describe_loaded_model(m.loaded) + " (shared base, loaded once)");
  progress.line("train: one adapter for each of " + std::to_string(users.size()) + " users (" +
                std::to_string(train_examples.size()) + " examples), " + std::to_string(total_steps) +
                " steps in all, objective " + m.objective->name() +
                (start > 0 ? ", resuming with user " + std::to_string(start + 1) + " (" + users[start] + ")" : "") +
                "; output " + run.file("adapters"));

  // ---- the users, one after another: a fresh adapter and optimizer, a stretch of the loop --------
  StepLoop loop(*m.objective, model, settings, train, *place.comm, total_steps, first_step[start], metrics.get(),
                progress);
  TrainSummary summary;
  summary.total_steps = total_steps;
  summary.steps_done = first_step[start];
  for (size_t u = start; u < users.size(); ++u) {
    const std::string& user = users[u];
    const auto mine = subset(train_examples, by_user.at(user));
    const auto valid_it = valid_by_user.find(user);
    const auto my_valid = valid_it == valid_by_user.end() ? std::vector<PairedExample>{}
                                                          : subset(valid_examples, valid_it->second);
    attach_lora(model, config.lora, user_seed(train.seed, user));
    if (u == start) {
      progress.line(describe_adapters(model, "one per user, seeded by train.seed and the user id"));
      if (const std::string warning = vllm_rank_warning(config.lora.rank); !warning.empty()) progress.line(warning);
    }
    Optimization optimization = build_optimization(model, train, *place.comm);
    TrainStep step(model, *m.objective, *optimization.optimizer, *optimization.sync, settings, place.comm.get());
    LoopStretch stretch;
    stretch.examples = &mine;
    stretch.plan = &plans[u];
    stretch.valid = &my_valid;
    stretch.step_offset = first_step[u];
    stretch.row_keys = {{"user", user}};
    stretch.label = "user " + std::to_string(u + 1) + "/" + std::to_string(users.size()) + " " + user + " | ";
    stretch.what = "user " + user;
    stretch.nonfinite_hint = [] {
      return std::string("lower train.lr; the adapters of the users before it are kept, --resume continues with this one");
    };
    const LoopEnd end = loop.run(step, stretch);
    summary.steps_done = end.steps_done;
    if (end.kind == LoopEnd::kSignalled) {
      detach_lora(model);
      throw Interrupted(end.signal,
                        "stopped during user " + user + " (" + std::to_string(u) + " of " + std::to_string(users.size()) +
                            " users' adapters written to " + run.file("adapters") + ")",
                        "");
    }

    // The adapter, then its record.
    json entry = {{"adapter", adapter_folder(user)},
                  {"train_examples", mine.size()},
                  {"valid_examples", my_valid.size()},
                  {"steps", plans[u].total_steps()},
                  {"first_step", first_step[u]},
                  {"last_loss", end.last_loss}};
    if (!std::isnan(end.valid_ce)) entry["valid_ce"] = end.valid_ce;
    const std::string staging = run.begin_folder(adapter_folder(user));
    write_lora_adapter(model, staging, config.model.path);
    json files = json::object();
    for (const char* f : {"adapter_config.json", "adapter_model.safetensors"})
      files[f] = sha256_file((fs::path(staging) / f).string());
    entry["files_sha256"] = files;
    run.publish_folder(adapter_folder(user));
    detach_lora(model);
    state["users"][user] = entry;
    write_file_atomic(run.file(kPerUserStateFile), state.dump(1) + "\n", "the per-user state");
    summary.last_loss = end.last_loss;
    summary.last_checkpoint = run.file(adapter_folder(user));
    progress.line("user " + std::to_string(u + 1) + "/" + std::to_string(users.size()) + " " + user + ": " +
                  std::to_string(mine.size()) + " examples, " + std::to_string(plans[u].total_steps()) +
                  " steps, last loss " + std::to_string(end.last_loss) +
                  (entry.contains("valid_ce") ? ", valid ce " + std::to_string(end.valid_ce) : "") + " -> " +
                  summary.last_checkpoint);
    const bool more = u + 1 < users.size();
    if (const int signal = interrupt_signal(); signal && more)
      throw Interrupted(signal,
                        "stopped after user " + user + " (" + std::to_string(u + 1) + " of " +
                            std::to_string(users.size()) + " users' adapters written to " + run.file("adapters") + ")",
                        "");
    if (options.stop_after_steps > 0 && first_step[u + 1] >= options.stop_after_steps && more) {
      progress.line("stopped after user " + user + " (step " + std::to_string(first_step[u + 1]) +
                    "); continue with --resume");
      return summary;
    }
  }
  summary.final_model_dir = run.file("adapters");
  progress.line("done: " + std::to_string(users.size()) + " adapters in " + summary.final_model_dir + ", metrics in " +
                metrics->path());
  return summary;
}

}  // namespace percetrain
