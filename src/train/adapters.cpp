// LoRA runs: the adapters on the frozen base, their checkpoint files, and per-user adapter runs.
#include "percetrain/train/adapters.hpp"

#include <torch/torch.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "percetrain/model/hf_folder.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/train/checkpoint.hpp"
#include "percetrain/train/fused_adamw.hpp"
#include "percetrain/train/master_weights.hpp"
#include "percetrain/train/metrics_log.hpp"
#include "percetrain/train/run_dir.hpp"
#include "percetrain/train/step.hpp"
#include "percetrain/util/checksum.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"
#include "percetrain/util/interrupt.hpp"
#include "percetrain/util/json.hpp"
#include "percetrain/util/text.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace percetrain {
namespace {

constexpr const char* kDropoutFile = "lora_dropout.pt";

std::string describe_adapters(CausalLMImpl& model, const std::string& origin) {
  const LoraSection s = lora_settings(model);
  int64_t base = 0, trainable = 0;
  for (const auto& p : model.parameters()) base += p.numel();
  for (const auto& [name, t] : lora_parameters(model)) trainable += t.numel();
  char text[512];
  std::snprintf(text, sizeof(text),
                "LoRA adapters (%s): r %lld, alpha %g%s, dropout %g on %s; %lld trainable parameters, %.3f%% of the "
                "base's %lld (frozen)",
                origin.c_str(), (long long)s.rank, s.alpha, s.use_rslora ? " (rsLoRA)" : "", s.dropout,
                join(s.target_modules).c_str(), (long long)trainable,
                100.0 * static_cast<double>(trainable) / static_cast<double>(std::max<int64_t>(1, base)),
                (long long)base);
  return text;
}

void restore_dropout_state(CausalLMImpl& model, const std::string& dir) {
  const std::string path = (fs::path(dir) / kDropoutFile).string();
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::Tensor state;
    archive.read("generator_state", state);
    set_lora_dropout_state(model, state);
  } catch (const c10::Error& e) {
    fail(path, "cannot be read: " + e.msg(), "the checkpoint is damaged; resume from an earlier one");
  }
}

// The settings of a loaded adapter against the lora section that asked for it.
void check_settings_agree(const LoraSection& wanted, const LoraSection& loaded, const JobConfig& config) {
  const std::string where = config.file + ": lora";
  const std::string file = config.lora.init_adapter + "/adapter_config.json";
  const std::string hint = "leave lora.rank at 0 to take the adapter's own settings";
  if (wanted.rank != loaded.rank)
    fail(where + ".rank", std::to_string(wanted.rank) + " differs from r = " + std::to_string(loaded.rank) + " in " + file,
         hint);
  if (wanted.alpha != loaded.alpha)
    fail(where + ".alpha", std::to_string(wanted.alpha) + " differs from lora_alpha = " + std::to_string(loaded.alpha) +
                               " in " + file,
         hint);
  if (wanted.use_rslora != loaded.use_rslora) fail(where + ".use_rslora", "differs from use_rslora in " + file, hint);
  const auto targets = expand_target_modules(wanted.target_modules, where + ".target_modules");
  if (targets != loaded.target_modules)
    fail(where + ".target_modules", "[" + join(targets) + "] differs from [" + join(loaded.target_modules) + "] in " + file,
         hint);
}

}  // namespace

std::string attach_run_adapters(CausalLMImpl& model, const JobConfig& config, const std::string& resume_from) {
  const LoraSection& lora = config.lora;
  const uint64_t seed = config.train.seed;
  if (!resume_from.empty()) {
    load_lora_adapter(model, resume_from, seed + 1);
    restore_dropout_state(model, resume_from);
    return describe_adapters(model, "resumed from " + resume_from);
  }
  if (!lora.init_adapter.empty()) {
    verify_recorded_adapter(lora.init_adapter);
    const LoraSection loaded = load_lora_adapter(model, lora.init_adapter, seed + 1);
    if (lora.enabled()) {
      try {
        check_settings_agree(lora, loaded, config);
      } catch (...) {
        detach_lora(model);
        throw;
      }
    }
    return describe_adapters(model, "continuing " + lora.init_adapter);
  }
  attach_lora(model, lora, seed);
  return describe_adapters(model, "fresh, seed " + std::to_string(seed));
}

std::vector<std::string> write_adapter_checkpoint_files(CausalLMImpl& model, const std::string& dir,
                                                        const std::string& base) {
  write_lora_adapter(model, dir, base);
  torch::serialize::OutputArchive archive;
  archive.write("generator_state", lora_dropout_state(model));
  save_archive((fs::path(dir) / kDropoutFile).string(), archive);
  return {"adapter_config.json", "adapter_model.safetensors", kDropoutFile};
}

std::string user_folder_problem(const std::string& user) {
  if (user.empty()) return "it is empty";
  if (user.size() > 200) return "it is longer than 200 bytes";
  if (user[0] == '.') return "it starts with a dot";
  for (unsigned char c : user) {
    if (c < 0x20 || c == 0x7f) return "it contains a control character";
    if (!(std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '@' || c == '+' || c == '=' || c >= 0x80))
      return std::string("it contains '") + static_cast<char>(c) + "'";
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Per-user runs.
namespace {

constexpr const char* kUsersFile = "users.json";
constexpr const char* kUsersFormat = "percetrain per-user adapters";

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

// The users whose adapters an earlier run left intact, as a prefix of `users`: the state file
// must describe the same config and data, and each adapter's files must match their checksums.
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
      std::fprintf(stderr, "%s: the adapter of user %s is missing or damaged; training it again\n", run.path().c_str(),
                   user.c_str());
      break;
    }
  }
  return done;
}

}  // namespace

void verify_recorded_adapter(const std::string& dir) {
  const fs::path folder = fs::absolute(fs::path(dir)).lexically_normal();
  const fs::path adapter = folder.filename().empty() ? folder.parent_path() : folder;
  std::error_code ec;
  std::map<std::string, std::string> files;
  std::string record;
  if (fs::exists(adapter / "trainer_state.json", ec)) {
    record = (adapter / "trainer_state.json").string();
    files = Checkpointer::read_state(adapter.string()).files;
  } else if (const fs::path users = adapter.parent_path().parent_path() / kUsersFile;
             adapter.parent_path().filename() == "adapters" && fs::exists(users, ec)) {
    const json state = read_json_file(users.string());
    const std::string user = adapter.filename().string();
    if (state.is_object() && state.value("format", "") == kUsersFormat && state.contains("users") &&
        state["users"].is_object() && state["users"].contains(user) && state["users"][user].is_object()) {
      record = users.string();
      try {
        files = state["users"][user].value("files_sha256", std::map<std::string, std::string>{});
      } catch (const json::exception& e) {
        fail(record, "is damaged: " + std::string(e.what()), "train the run's adapters again");
      }
    }
  }
  std::string bad_file;
  if (const std::string problem = checksum_problem(adapter.string(), files, &bad_file); !problem.empty())
    fail(bad_file, (problem.find("is missing") != std::string::npos ? "is missing; " : "does not match ") +
                       std::string("the checksum recorded in ") + record + ": the adapter is damaged",
         "train it again (train --resume retrains damaged per-user adapters), or restore the file");
}

TrainSummary train_user_adapters(const JobConfig& config, const TrainOptions& options,
                                 const std::vector<PairedExample>& train_examples,
                                 const std::vector<PairedExample>& valid_examples, const std::string& tokenizer_path,
                                 int64_t pad_id) {
  // ---- set up: users, run folder, resume point, base model ----------------------------------
  const TrainSection& train = config.train;
  ProgressLine progress(options.progress);
  if (train_examples.empty()) fail(config.file + ": data.train_file", "holds no usable training examples");
  if (!config.lora.init_adapter.empty())
    fail(config.file + ": lora.per_user", "cannot continue an adapter (--adapter, lora.init_adapter): every user starts "
         "from a fresh one", "merge the shared adapter into the base with merge-adapter and train on the merged model");
  const auto device = parse_device(config.model.device);
  const auto dtype = training_dtype(config, device);
  const std::string train_file = config.data.train_file.empty() ? "training data" : config.data.train_file;
  const auto by_user = examples_by_user(train_examples, train_file);
  const auto valid_by_user = valid_examples.empty()
                                 ? std::map<std::string, std::vector<size_t>>{}
                                 : examples_by_user(valid_examples, config.data.valid_file);
  std::vector<std::string> users;
  for (const auto& [user, indices] : by_user) {
    if (const std::string problem = user_folder_problem(user); !problem.empty())
      fail(train_file + ": " + train_examples[indices.front()].id,
           "user id " + quote_name(user) + " cannot name its adapter folder: " + problem,
           "set data.user_key to a field with plain ids (letters, digits, _ - . @ + =)");
    users.push_back(user);
  }
  // Every user's steps, from its own plan: step numbers in metrics.jsonl count over all users.
  std::vector<int64_t> first_step(users.size() + 1, 0);
  for (size_t u = 0; u < users.size(); ++u) {
    const StepPlan plan(by_user.at(users[u]).size(), train.batch_size, user_seed(train.seed, users[u]), train.epochs,
                        train.max_steps);
    first_step[u + 1] = first_step[u] + plan.total_steps();
  }
  const int64_t total_steps = first_step.back();

  RunDirectory run(config.output.dir);
  const std::string effective_config = job_config_to_json(config);
  const auto data_sha = data_checksums(config);
  json state = {{"format", kUsersFormat},
                {"base_model", config.model.path},
                {"job_config", json::parse(effective_config)},
                {"data_sha256", data_sha},
                {"users", json::object()}};
  size_t start = 0;
  const bool resume = options.resume || train.resume == ResumePolicy::kAuto;
  if (resume && run.recorded(kUsersFile) && fs::exists(run.file(kUsersFile))) {
    const json recorded = read_json_file(run.file(kUsersFile));
    if (recorded.value("format", "") != kUsersFormat || !recorded.contains("users") || !recorded["users"].is_object())
      fail(run.file(kUsersFile), "is not the state of a per-user run", "start over with --overwrite");
    const auto mismatches = resume_config_mismatches(recorded["job_config"].dump(), effective_config);
    if (!mismatches.empty())
      fail(run.file(kUsersFile), "was written by a run with other settings: " + join(mismatches),
           "resume with the settings it was written with, or start a new run in another output.dir (or --overwrite)");
    if (recorded.value("data_sha256", std::map<std::string, std::string>{}) != data_sha)
      fail(run.file(kUsersFile), "the training data has changed since the earlier run",
           "resume with the data it was trained on, or start a new run");
    start = intact_prefix(run, recorded, users);
    for (size_t u = 0; u < start; ++u) state["users"][users[u]] = recorded["users"][users[u]];
  } else {
    if (options.resume) fail(run.path(), "--resume was given but there is no per-user run to resume");
    run.refuse_foreign_run_files();
    if (run.holds_run()) {
      if (!options.overwrite && train.resume != ResumePolicy::kAuto)
        fail(run.path(), "holds an earlier run",
             "continue it with --resume, or start over with --overwrite, which removes only the files that run wrote");
      run.remove_recorded_run();
    }
  }
  if (start == 0) {
    if (const std::string made = prepare_model_folder(config.model, tokenizer_path, true); !made.empty())
      progress.line(made);
  }

  LoadedModel loaded = load_causal_lm(config.model.path, device, dtype);
  CausalLMImpl& model = *loaded.model;
  check_token_ids_fit(train_examples, tokenizer_path, -1, loaded.config.vocab_size, loaded.folder);
  model.train();
  model.set_gradient_checkpointing(train.gradient_checkpointing);
  const auto objective = make_objective(config.objective);
  const StepSettings settings = StepSettings::from(config, pad_id, device);

  run.record_file("metrics.jsonl");
  run.record_file("job_config.json");
  run.record_file(kUsersFile);
  MetricsLog metrics(run.file("metrics.jsonl"), first_step[start]);
  write_file_atomic(run.file("job_config.json"), effective_config, "the effective config");
  write_file_atomic(run.file(kUsersFile), state.dump(1) + "\n", "the per-user state");
  progress.line(describe_loaded_model(loaded) + " (shared base, loaded once)");
  progress.line("train: one adapter for each of " + std::to_string(users.size()) + " users (" +
                std::to_string(train_examples.size()) + " examples), " + std::to_string(total_steps) +
                " steps in all, objective " + objective->name() +
                (start > 0 ? ", resuming with user " + std::to_string(start + 1) + " (" + users[start] + ")" : "") +
                "; output " + run.file("adapters"));

  // ---- the users, one after another ------------------------------------------------------------
  TrainSummary summary;
  summary.total_steps = total_steps;
  summary.steps_done = first_step[start];
  const auto t_start = std::chrono::steady_clock::now();
  for (size_t u = start; u < users.size(); ++u) {
    const std::string& user = users[u];
    const auto mine = subset(train_examples, by_user.at(user));
    const auto valid_it = valid_by_user.find(user);
    const auto my_valid = valid_it == valid_by_user.end() ? std::vector<PairedExample>{}
                                                          : subset(valid_examples, valid_it->second);
    const uint64_t seed = user_seed(train.seed, user);
    attach_lora(model, config.lora, seed);
    if (u == start) {
      progress.line(describe_adapters(model, "one per user, seeded by train.seed and the user id"));
      if (const std::string warning = vllm_rank_warning(config.lora.rank); !warning.empty()) progress.line(warning);
    }
    MasterWeights masters(trainable_parameters(model), train.master_weights);
    const auto optimizer = make_optimizer(masters, train);
    TrainStep step(model, *objective, masters, *optimizer, settings);
    StepPlan plan(mine.size(), train.batch_size, seed, train.epochs, train.max_steps);
    const int64_t steps = plan.total_steps();
    double last_loss = 0.0;
    for (int64_t s = 0; s < steps; ++s) {
      const double lr = learning_rate_at(train, s, steps);
      const auto t_step = std::chrono::steady_clock::now();
      const StepResult r = step.run(mine, plan.examples(s), lr);
      if (!r.finite)
        fail("train user " + user + ", step " + std::to_string(s + 1),
             "the loss is not finite (" + std::to_string(r.loss) + ")",
             "lower train.lr; the adapters of the users before it are kept, --resume continues with this one");
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_step).count();
      const int64_t done = first_step[u] + s + 1;
      summary.steps_done = done;
      last_loss = r.loss;
      if (done % train.log_every == 0 || s + 1 == steps) {
        json row = {{"step", done},       {"user", user},        {"user_step", s + 1},
                    {"loss", r.loss},     {"ce", r.ce()},        {"lr", lr},
                    {"grad_norm", r.grad_norm}, {"response_tokens", r.tokens}, {"tokens", r.processed},
                    {"step_seconds", seconds},  {"tokens_per_s", r.processed / std::max(1e-9, seconds)},
                    {"peak_memory_mib", peak_memory_mib(device)}};
        if (!r.pir.empty()) row["pir_mean"] = r.pir_mean();
        metrics.append(row);
      }
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      const double eta = elapsed / static_cast<double>(done - first_step[start]) * static_cast<double>(total_steps - done);
      char text[256];
      std::snprintf(text, sizeof(text), "user %zu/%zu %s | step %lld/%lld | %s loss %.4f | ce %.4f | ETA %s", u + 1,
                    users.size(), user.c_str(), (long long)(s + 1), (long long)steps, objective->name().c_str(), r.loss,
                    r.ce(), format_duration(eta).c_str());
      progress.update(text, done % train.log_every == 0 && !progress.live());
      if (const int signal = interrupt_signal(); signal && !(u + 1 == users.size() && s + 1 == steps)) {
        detach_lora(model);
        throw Interrupted(signal,
                          "stopped during user " + user + " (" + std::to_string(u) + " of " +
                              std::to_string(users.size()) + " users' adapters written to " + run.file("adapters") + ")",
                          "");
      }
    }

    // Validate on the user's own held-out records, then write the adapter.
    json entry = {{"adapter", adapter_folder(user)},
                  {"train_examples", mine.size()},
                  {"valid_examples", my_valid.size()},
                  {"steps", steps},
                  {"first_step", first_step[u]},
                  {"last_loss", last_loss}};
    if (!my_valid.empty()) {
      model.eval();
      const auto v = validate_examples(model, *objective, my_valid, settings);
      model.train();
      metrics.append({{"step", first_step[u] + steps}, {"user", user}, {"valid_ce", v.ce}, {"valid_loss", v.objective},
                      {"valid_pir_mean", v.pir_mean}, {"valid_response_tokens", v.tokens}});
      entry["valid_ce"] = v.ce;
    }
    const std::string staging = run.begin_folder(adapter_folder(user));
    write_lora_adapter(model, staging, config.model.path);
    json files = json::object();
    for (const char* f : {"adapter_config.json", "adapter_model.safetensors"})
      files[f] = sha256_file((fs::path(staging) / f).string());
    entry["files_sha256"] = files;
    run.publish_folder(adapter_folder(user));
    detach_lora(model);
    state["users"][user] = entry;
    write_file_atomic(run.file(kUsersFile), state.dump(1) + "\n", "the per-user state");
    summary.last_loss = last_loss;
    summary.last_checkpoint = run.file(adapter_folder(user));
    progress.line("user " + std::to_string(u + 1) + "/" + std::to_string(users.size()) + " " + user + ": " +
                  std::to_string(mine.size()) + " examples, " + std::to_string(steps) + " steps, last loss " +
                  std::to_string(last_loss) +
                  (entry.contains("valid_ce") ? ", valid ce " + std::to_string(entry["valid_ce"].get<double>()) : "") +
                  " -> " + summary.last_checkpoint);
    const int64_t done = first_step[u + 1];
    if (options.stop_after_steps > 0 && done >= options.stop_after_steps && u + 1 < users.size()) {
      progress.line("stopped after user " + user + " (step " + std::to_string(done) + "); continue with --resume");
      return summary;
    }
  }
  summary.final_model_dir = run.file("adapters");
  progress.line("done: " + std::to_string(users.size()) + " adapters in " + summary.final_model_dir + ", metrics in " +
                metrics.path());
  return summary;
}

}  // namespace percetrain
