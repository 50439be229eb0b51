// Per-user adapter runs: the users one after another, each a stretch of the shared step loop; on
// several ranks, rounds of one user per rank whose adapters and metrics rows rank 0 publishes.
#include "percetrain/train/per_user.hpp"

#include <torch/torch.h>

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "percetrain/dist/record_shards.hpp"
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

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (!in) fail(path.string(), "cannot read the file just written");
  return bytes.str();
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) fail(path.string(), "cannot write the file", "check the free disk space");
}

constexpr const char* kAdapterFiles[] = {"adapter_config.json", "adapter_model.safetensors"};

// A non-root rank's scratch folder, of this process alone and removed with it: the rank's own
// metrics.jsonl (the step loop's rows) and each adapter before it goes to rank 0, which alone
// writes into output.dir. Those of ranks that were killed (their pid runs no more) go when the
// next one is made.
class ScratchFolder {
 public:
  explicit ScratchFolder(int rank)
      : path_(fs::temp_directory_path() /
              ("percetrain-per-user-rank" + std::to_string(rank) + "-" + std::to_string(::getpid()))) {
    std::error_code ec;
    static const std::regex ours(R"(percetrain-per-user-rank[0-9]+-([0-9]+))");
    for (const auto& entry : fs::directory_iterator(path_.parent_path(), ec)) {
      std::smatch m;
      const std::string name = entry.path().filename().string();
      if (std::regex_match(name, m, ours) && ::kill(static_cast<pid_t>(std::stoll(m[1].str())), 0) != 0 &&
          errno == ESRCH)
        fs::remove_all(entry.path(), ec);
    }
    fs::remove_all(path_, ec);
    fs::create_directories(path_);
  }
  ~ScratchFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The communicator of a user's step loop: one rank for all the loop computes (a user is trained
// by its rank alone), except the loop's once-a-step signal check (max_over_ranks, the one
// single-number maximum it takes), which is the run's ShardSync heartbeat: ranks whose users take
// different numbers of steps stay in step (a rank done with its user keeps answering until every
// rank is), a signal on any rank stops every rank after its current step, and a lost rank is named
// within train.distributed.timeout_s however long the other users of the round take.
class UserLoopCommunicator : public Communicator {
 public:
  UserLoopCommunicator(Communicator& run, Communicator& own)
      : Communicator(0, 1, own.device(), run.timeout()), own_(own), sync_(run) {}
  std::string backend() const override { return own_.backend(); }
  Pending all_reduce_sum(const at::Tensor& flat) override { return own_.all_reduce_sum(flat); }
  Pending reduce_scatter_sum(const at::Tensor& flat, const at::Tensor& shard) override {
    return own_.reduce_scatter_sum(flat, shard);
  }
  Pending all_gather(const at::Tensor& shard, const at::Tensor& flat) override { return own_.all_gather(shard, flat); }
  void broadcast(const at::Tensor& tensor, int root) override { own_.broadcast(tensor, root); }
  void barrier() override { own_.barrier(); }
  void all_reduce(std::vector<double>& values, ScalarReduce op) override { own_.all_reduce(values, op); }
  void all_reduce(std::vector<int64_t>& values, ScalarReduce op) override {
    if (values.size() != 1 || op != ScalarReduce::kMax || signal_ != 0) return own_.all_reduce(values, op);
    signal_ = sync_.step(static_cast<int>(values[0]));
    values[0] = signal_;
  }
  // A round begins: every rank heartbeats again.
  void begin_round() { signal_ = 0; }
  // This rank's user is done (or it had none, or its training failed): takes part in the others'
  // steps until every rank is done or one saw a signal, whose number it returns (0: none).
  int end_round(int signal) {
    if (signal_ == 0) signal_ = sync_.finish(signal);
    return signal_;
  }

 private:
  Communicator& own_;
  ShardSync sync_;
  int signal_ = 0;  // a signal the heartbeat reported: every rank has left it for this round
};

// What a rank tells the others at the end of a round about its user.
enum UserState : int64_t { kNoUser = 0, kFinished = 1, kSignalled = 2, kFailed = 3 };

// One user's result as a rank sends it to rank 0: a line of JSON (the users.json entry, the
// metrics rows, the file sizes), then the adapter's files.
std::string pack_user(json header, const fs::path& adapter) {
  std::string blobs;
  header["files"] = json::array();
  for (const char* f : kAdapterFiles) {
    const std::string bytes = read_bytes(adapter / f);
    header["files"].push_back({{"name", f}, {"size", bytes.size()}});
    blobs += bytes;
  }
  return header.dump() + "\n" + blobs;
}

// `payload` from rank `from` to every rank (`size` bytes, which every rank knows).
std::string send_from(Communicator& comm, int from, const std::string& payload, int64_t size) {
  at::Tensor buffer = comm.rank() == from
                          ? torch::from_blob(const_cast<char*>(payload.data()), {size}, torch::kUInt8).clone()
                          : torch::empty({size}, torch::kUInt8);
  buffer = buffer.to(comm.device());
  comm.broadcast(buffer, from);
  buffer = buffer.cpu().contiguous();
  return std::string(reinterpret_cast<const char*>(buffer.data_ptr<uint8_t>()), static_cast<size_t>(size));
}


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
  // ---- the users and their steps (alike on every rank) --------------------------------------------
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
  // The run's protocol (who starts where, what finished, the adapters to rank 0) goes through the
  // job's communicator; a user's own steps through a single-rank one: a user is trained by one
  // rank alone, exactly as on one rank, so its adapter does not depend on the number of ranks.
  Communicator& comm = *place.comm;
  const auto own = make_single_rank_communicator(place.device);
  const int world = comm.world_size(), rank = comm.rank();
  ProgressLine progress(options.progress && place.root());

  // ---- the run folder (rank 0): the users an earlier run finished are kept --------------------------
  std::unique_ptr<RunDirectory> run;
  const std::string effective_config = job_config_to_json(config);
  const auto data_sha = data_checksums(config);
  json state = {{"format", kPerUserStateFormat},
                {"base_model", config.model.path},
                {"job_config", json::parse(effective_config)},
                {"data_sha256", data_sha},
                {"users", json::object()}};
  const size_t start = static_cast<size_t>(comm.decided_by_root(
      [&]() -> std::vector<int64_t> {
        run = std::make_unique<RunDirectory>(config.output.dir);
        size_t first = 0;
        const bool earlier = run->recorded(kPerUserStateFile) && fs::exists(run->file(kPerUserStateFile));
        if (claim_run_folder(*run, RunKind::kPerUser, earlier, options, train.resume)) {
          const json recorded = read_earlier_state(*run, effective_config, data_sha);
          first = intact_prefix(*run, recorded, users);
          for (size_t u = 0; u < first; ++u) state["users"][users[u]] = recorded["users"][users[u]];
        }
        if (first == 0)
          if (const std::string made = prepare_model_folder(config.model, tokenizer_path, true); !made.empty())
            progress.line(made);
        return {static_cast<int64_t>(first)};
      },
      1, "start the per-user run")[0]);
  const std::string adapters_dir = (fs::absolute(fs::path(config.output.dir)).lexically_normal() / "adapters").string();

  // ---- the base (loaded once per rank), the logs ------------------------------------------------------
  ModelForTraining m = load_model_for_training(config, config.model.path, place, train_examples, tokenizer_path);
  CausalLMImpl& model = *m.loaded.model;
  StepSettings settings = StepSettings::from(config, pad_id, place.device);
  if (m.reference.model) settings.reference = m.reference.model.get();
  // Rank 0 logs into output.dir; the others into their scratch folder, whose rows rank 0 appends.
  std::unique_ptr<ScratchFolder> scratch;
  std::unique_ptr<RunDirectory> scratch_run;
  std::unique_ptr<MetricsLog> metrics;
  size_t rows_sent = 0;
  if (run) {
    metrics = open_logs(*run, effective_config, first_step[start]);
    run->record_file(kPerUserStateFile);
    write_file_atomic(run->file(kPerUserStateFile), state.dump(1) + "\n", "the per-user state");
  } else {
    scratch = std::make_unique<ScratchFolder>(rank);
    scratch_run = std::make_unique<RunDirectory>(scratch->path().string());
    metrics = open_logs(*scratch_run, effective_config, 0);
  }
  progress.line(describe_loaded_model(m.loaded) + " (shared base, loaded once" +
                (world > 1 ? " on each of " + std::to_string(world) + " ranks" : std::string()) + ")");
  progress.line("train: one adapter for each of " + std::to_string(users.size()) + " users (" +
                std::to_string(train_examples.size()) + " examples), " + std::to_string(total_steps) +
                " steps in all, objective " + m.objective->name() +
                (world > 1 ? ", " + std::to_string(world) + " users at a time (one per rank)" : std::string()) +
                (start > 0 ? ", resuming with user " + std::to_string(start + 1) + " (" + users[start] + ")" : "") +
                "; output " + adapters_dir);

  // ---- rounds of one user per rank: a fresh adapter and optimizer, a stretch of the loop -------------
  UserLoopCommunicator loop_comm(comm, *own);
  StepLoop loop(*m.objective, model, settings, train, loop_comm, total_steps, first_step[start], metrics.get(),
                progress);
  TrainSummary summary;
  summary.total_steps = total_steps;
  summary.steps_done = first_step[start];
  const std::string n_users = std::to_string(users.size());
  auto user_label = [&](size_t u) { return "user " + std::to_string(u + 1) + "/" + n_users + " " + users[u]; };
  // Rank 0: an adapter folder written, its record in users.json.
  auto published = [&](size_t u, json entry) {
    state["users"][users[u]] = std::move(entry);
    write_file_atomic(run->file(kPerUserStateFile), state.dump(1) + "\n", "the per-user state");
    summary.last_loss = state["users"][users[u]]["last_loss"].get<double>();
    summary.last_checkpoint = run->file(adapter_folder(users[u]));
  };
  auto user_line = [&](size_t u, const json& entry, int by) {
    progress.line(user_label(u) + ": " + std::to_string(entry["train_examples"].get<int64_t>()) + " examples, " +
                  std::to_string(plans[u].total_steps()) + " steps, last loss " +
                  std::to_string(entry["last_loss"].get<double>()) +
                  (entry.contains("valid_ce") ? ", valid ce " + std::to_string(entry["valid_ce"].get<double>()) : "") +
                  " -> " + run->file(adapter_folder(users[u])) +
                  (world > 1 ? " (rank " + std::to_string(by) + ")" : std::string()));
  };
  bool first_user = true;
  for (size_t round = start; round < users.size(); round += static_cast<size_t>(world)) {
    const size_t u = round + static_cast<size_t>(rank);
    int64_t user_state = kNoUser, signal = 0;
    std::string payload;
    std::exception_ptr error;
    loop_comm.begin_round();
    if (u < users.size()) {
      try {
        const std::string& user = users[u];
        const auto mine = subset(train_examples, by_user.at(user));
        const auto valid_it = valid_by_user.find(user);
        const auto my_valid = valid_it == valid_by_user.end() ? std::vector<PairedExample>{}
                                                              : subset(valid_examples, valid_it->second);
        attach_lora(model, config.lora, user_seed(train.seed, user));
        if (first_user) {
          progress.line(describe_adapters(model, "one per user, seeded by train.seed and the user id"));
          if (const std::string warning = vllm_rank_warning(config.lora.rank); !warning.empty()) progress.line(warning);
          first_user = false;
        }
        Optimization optimization = build_optimization(model, train, *own);
        TrainStep step(model, *m.objective, *optimization.optimizer, *optimization.sync, settings, own.get());
        LoopStretch stretch;
        stretch.examples = &mine;
        stretch.plan = &plans[u];
        stretch.valid = &my_valid;
        stretch.step_offset = first_step[u];
        stretch.row_keys = {{"user", user}};
        stretch.label = user_label(u) + " | ";
        stretch.what = "user " + user;
        stretch.nonfinite_hint = [] {
          return std::string("lower train.lr; the adapters of the users before it are kept, --resume continues with this one");
        };
        const LoopEnd end = loop.run(step, stretch);
        if (end.kind == LoopEnd::kSignalled) {
          user_state = kSignalled;
          signal = end.signal;
        } else {
          json entry = {{"adapter", adapter_folder(user)},
                        {"train_examples", mine.size()},
                        {"valid_examples", my_valid.size()},
                        {"steps", plans[u].total_steps()},
                        {"first_step", first_step[u]},
                        {"last_loss", end.last_loss}};
          if (!std::isnan(end.valid_ce)) entry["valid_ce"] = end.valid_ce;
          if (run) {
            // Rank 0's user is the first of its round: published at once, as on one rank.
            const std::string staging = run->begin_folder(adapter_folder(user));
            write_lora_adapter(model, staging, config.model.path);
            json files = json::object();
            for (const char* f : kAdapterFiles) files[f] = sha256_file((fs::path(staging) / f).string());
            entry["files_sha256"] = files;
            run->publish_folder(adapter_folder(user));
            published(u, entry);
            user_line(u, entry, 0);
          } else {
            const fs::path folder = scratch->path() / "adapter";
            std::error_code ec;
            fs::remove_all(folder, ec);
            fs::create_directories(folder);
            write_lora_adapter(model, folder.string(), config.model.path);
            // This user's metrics rows: those the loop appended to the scratch log since the last user.
            json rows = json::array();
            std::ifstream in(metrics->path());
            size_t line_no = 0;
            for (std::string line; std::getline(in, line); ++line_no)
              if (line_no >= rows_sent && !line.empty()) rows.push_back(json::parse(line));
            rows_sent = line_no;
            payload = pack_user({{"user", user}, {"entry", entry}, {"rows", rows}}, folder);
          }
          user_state = kFinished;
        }
        detach_lora(model);
      } catch (...) {
        error = std::current_exception();
        user_state = kFailed;
      }
    }

    // ---- the end of the round: what each rank's user came to, the adapters to rank 0 ----------------
    signal = std::max<int64_t>(signal, loop_comm.end_round(interrupt_signal()));
    std::vector<int64_t> news(3 * static_cast<size_t>(world), 0);
    news[3 * rank] = user_state;
    news[3 * rank + 1] = static_cast<int64_t>(payload.size());
    news[3 * rank + 2] = signal;
    comm.all_reduce(news);
    auto state_of = [&](int r) { return news[3 * static_cast<size_t>(r)]; };
    std::vector<std::string> received(static_cast<size_t>(world));
    for (int r = 1; r < world; ++r)
      if (state_of(r) == kFinished) received[r] = send_from(comm, r, payload, news[3 * r + 1]);
    // The users finished in user order are published (their adapters and rows), up to the first
    // that is not: a resumed run continues with that one.
    const size_t round_end = std::min(users.size(), round + static_cast<size_t>(world));
    int finished = 0;
    while (round + finished < round_end && state_of(finished) == kFinished) ++finished;
    comm.decided_by_root(
        [&]() -> std::vector<int64_t> {
          for (int r = 1; r < finished; ++r) {
            const std::string& bytes = received[r];
            const size_t newline = bytes.find('\n');
            const json header = json::parse(bytes.substr(0, newline));
            const size_t v = round + static_cast<size_t>(r);
            if (header.value("user", "") != users[v])
              fail("rank " + std::to_string(r), "sent the adapter of " + header.value("user", std::string("?")) +
                                                    " where " + users[v] + " was due");
            const std::string staging = run->begin_folder(adapter_folder(users[v]));
            json entry = header["entry"], files = json::object();
            size_t offset = newline + 1;
            for (const auto& f : header["files"]) {
              const std::string name = f["name"].get<std::string>();
              const size_t size = f["size"].get<size_t>();
              write_bytes(fs::path(staging) / name, bytes.substr(offset, size));
              offset += size;
              files[name] = sha256_file((fs::path(staging) / name).string());
            }
            entry["files_sha256"] = files;
            for (const auto& row : header["rows"]) metrics->append(row);
            run->publish_folder(adapter_folder(users[v]));
            published(v, entry);
            user_line(v, entry, r);
          }
          return {};
        },
        0, "publish the adapters of users " + users[round] + ".." + users[round_end - 1]);
    const size_t done_users = round + static_cast<size_t>(finished);
    summary.steps_done = first_step[done_users];
    if (error) std::rethrow_exception(error);
    for (int r = 0; r < world; ++r)
      if (state_of(r) == kFailed)
        fail("rank " + std::to_string(rank), "rank " + std::to_string(r) + " could not train " +
                                                 user_label(round + static_cast<size_t>(r)) +
                                                 " (its error says why)");
    int64_t any_signal = 0;
    for (int r = 0; r < world; ++r) any_signal = std::max(any_signal, news[3 * r + 2]);
    const bool more = round_end < users.size() || done_users < round_end;
    const std::string written = " (" + std::to_string(done_users) + " of " + n_users + " users' adapters written to " +
                                adapters_dir + ")";
    if (any_signal && more)
      throw Interrupted(static_cast<int>(any_signal),
                        (done_users < round_end ? "stopped during user " + users[done_users]
                                                : "stopped after user " + users[done_users - 1]) + written,
                        "");
    if (options.stop_after_steps > 0 && first_step[round_end] >= options.stop_after_steps && more) {
      progress.line("stopped after user " + users[round_end - 1] + " (step " + std::to_string(first_step[round_end]) +
                    "); continue with --resume");
      return summary;
    }
  }
  summary.final_model_dir = adapters_dir;
  progress.line("done: " + n_users + " adapters in " + summary.final_model_dir + ", metrics in " +
                (run ? metrics->path() : std::string("metrics.jsonl")));
  return summary;
}

}  // namespace percetrain
