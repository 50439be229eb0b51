// Checkpoint folders: staged, checksummed, fsynced, published, pruned, verified, restored.
#include "percetrain/train/checkpoint.hpp"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "percetrain/dist/communicator.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/train/master_weights.hpp"
#include "percetrain/train/run_dir.hpp"
#include "percetrain/util/checksum.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"
#include "percetrain/util/json.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace percetrain {

std::string checkpoint_name(int64_t step) { return "checkpoint-" + std::to_string(step); }

std::string checkpoint_path(const std::string& out_dir, int64_t step) {
  const fs::path current = fs::path(out_dir) / checkpoint_name(step);
  char legacy[32];
  std::snprintf(legacy, sizeof(legacy), "checkpoint-%06lld", static_cast<long long>(step));
  std::error_code ec;
  if (!fs::exists(current, ec) && fs::exists(fs::path(out_dir) / legacy, ec)) return (fs::path(out_dir) / legacy).string();
  return current.string();
}

Checkpointer::Checkpointer(RunDirectory* run, Communicator& comm, std::string out_dir, int64_t keep_last,
                           std::string tokenizer_source)
    : run_(run),
      comm_(comm),
      out_dir_(std::move(out_dir)),
      tokenizer_source_(std::move(tokenizer_source)),
      keep_last_(keep_last) {}

std::map<int64_t, std::string> Checkpointer::complete() const {
  std::map<int64_t, std::string> found;
  static const std::regex pattern("checkpoint-([0-9]+)");
  if (!run_) fail("checkpoints", "are listed by rank 0 alone");
  for (const auto& entry : fs::directory_iterator(run_->path())) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, m, pattern) && !run_->folder_files(name).empty()) {
      // An older percetrain's "checkpoint-000042" and this one's "checkpoint-42" of one step: the newer name wins.
      const int64_t step = std::stoll(m[1]);
      if (!found.count(step) || name == checkpoint_name(step)) found[step] = entry.path().string();
    }
  }
  return found;
}

std::string Checkpointer::newest_intact() const {
  const auto saved = complete();
  for (auto it = saved.rbegin(); it != saved.rend(); ++it)
    if (verify(it->second).empty()) return it->second;
  return "";
}

std::string Checkpointer::save(CausalLMImpl& model, const torch::optim::Optimizer* optimizer,
                               const MasterWeights& masters, const TrainerState& state) {
  if (!comm_.distributed()) return write(model, optimizer, masters, state);
  const std::string name = checkpoint_name(state.step);
  std::string path = (fs::path(out_dir_) / name).string();
  if (run_) {
    path = write(model, optimizer, masters, state);
  } else if (shard_writer_) {
    // Rank 0 created the staging folder before the first barrier and checksums it after the second.
    comm_.barrier();
    shard_writer_((fs::path(out_dir_) / (name + ".partial")).string());
    comm_.barrier();
  }
  comm_.barrier();  // published: every rank may go on (or stop)
  return path;
}

std::string Checkpointer::write(CausalLMImpl& model, const torch::optim::Optimizer* optimizer,
                                const MasterWeights& masters, const TrainerState& state) {
  RunDirectory& run = *run_;
  const std::string name = checkpoint_name(state.step);
  // A checkpoint of this step under an older percetrain's name (a resumed run wrote it before).
  if (const std::string other = checkpoint_path(out_dir_, state.step); fs::path(other).filename() != name)
    run.remove_folder(fs::path(other).filename().string());
  const fs::path staging = run.begin_folder(name);
  if (shard_writer_) {
    if (comm_.distributed()) comm_.barrier();  // the staging folder exists
    shard_writer_(staging.string());
    if (comm_.distributed()) comm_.barrier();  // every rank's files are in it
  }
  SaveOptions save;
  save.tokenizer_source = tokenizer_source_;
  if (model_writer_) model_writer_(model, staging.string());
  else write_model_files(model, staging.string(), save);
  if (optimizer) {
    torch::serialize::OutputArchive archive;
    optimizer->save(archive);
    save_archive((staging / "optimizer.pt").string(), archive);
  }
  masters.save(staging.string());

  TrainerState s = state;
  s.files.clear();
  for (const auto& entry : fs::directory_iterator(staging))  // this rank's files and the others'
    if (entry.is_regular_file())
      s.files[entry.path().filename().string()] = sha256_file(entry.path().string());
  json j = {{"step", s.step},
            {"total_steps", s.total_steps},
            {"steps_per_epoch", s.steps_per_epoch},
            {"seed", s.seed},
            {"objective", s.objective},
            {"train_examples", s.train_examples},
            {"world_size", s.world_size},
            {"zero", s.zero},
            {"job_config", s.job_config.empty() ? json() : json::parse(s.job_config)},
            {"data_sha256", s.data_sha256},
            {"files_sha256", s.files}};
  // trainer_state.json is written last: a folder without it is never a complete checkpoint.
  write_file_atomic((staging / "trainer_state.json").string(), j.dump(2) + "\n", "the trainer state");
  run.publish_folder(name);

  auto checkpoints = complete();
  while (static_cast<int64_t>(checkpoints.size()) > keep_last_) {
    run.remove_folder(fs::path(checkpoints.begin()->second).filename().string());
    checkpoints.erase(checkpoints.begin());
  }
  return run.file(name);
}

TrainerState Checkpointer::read_state(const std::string& dir) {
  const std::string path = (fs::path(dir) / "trainer_state.json").string();
  const json j = read_json_file(path);
  TrainerState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.total_steps = j.value("total_steps", int64_t{0});
    s.steps_per_epoch = j.value("steps_per_epoch", int64_t{0});
    s.seed = j.value("seed", uint64_t{0});
    s.objective = j.value("objective", "");
    s.train_examples = j.value("train_examples", int64_t{0});
    s.world_size = j.value("world_size", int64_t{1});
    s.zero = j.value("zero", int64_t{0});
    if (j.contains("job_config") && j["job_config"].is_object()) s.job_config = j["job_config"].dump();
    s.data_sha256 = j.value("data_sha256", std::map<std::string, std::string>{});
    s.files = j.value("files_sha256", std::map<std::string, std::string>{});
  } catch (const json::exception& e) {
    fail(path, std::string("is damaged: ") + e.what());
  }
  return s;
}

std::string Checkpointer::verify(const std::string& dir) {
  TrainerState s;
  try {
    s = read_state(dir);
  } catch (const Error& e) {
    return e.what();
  }
  if (s.files.empty()) return "trainer_state.json lists no checksums (written before percetrain recorded them)";
  return checksum_problem(dir, s.files);
}

namespace {

void load_optimizer(const std::string& path, torch::optim::Optimizer& optimizer) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    optimizer.load(archive);
  } catch (const c10::Error& e) {
    fail(path, "cannot be read: " + e.msg(), "the checkpoint is damaged; resume from an earlier one");
  }
}

std::string rank_file(const std::string& dir, const char* kind, int rank) {
  char name[64];
  std::snprintf(name, sizeof(name), "%s-rank-%05d.pt", kind, rank);
  return (fs::path(dir) / name).string();
}

}  // namespace

void restore_training_state(const std::string& dir, torch::optim::Optimizer& optimizer, MasterWeights& masters) {
  masters.load(dir);
  load_optimizer((fs::path(dir) / "optimizer.pt").string(), optimizer);
}

void save_shard_state(const std::string& dir, int rank, const torch::optim::Optimizer& optimizer,
                      const at::Tensor& shard_values) {
  torch::serialize::OutputArchive state;
  optimizer.save(state);
  save_archive(rank_file(dir, "optimizer", rank), state);
  torch::serialize::OutputArchive values;
  values.write("values", shard_values.detach().cpu());
  save_archive(rank_file(dir, "shard", rank), values);
}

void restore_shard_state(const std::string& dir, int rank, torch::optim::Optimizer& optimizer,
                         const at::Tensor& shard_values) {
  const std::string path = rank_file(dir, "shard", rank);
  if (!fs::exists(path))
    fail(path, "is missing: the checkpoint has no shard for rank " + std::to_string(rank),
         "resume with the number of ranks and train.distributed.zero of the run that wrote it");
  torch::Tensor values;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    archive.read("values", values);
  } catch (const c10::Error& e) {
    fail(path, "cannot be read: " + e.msg(), "the checkpoint is damaged; resume from an earlier one");
  }
  if (values.numel() != shard_values.numel())
    fail(path, "holds " + std::to_string(values.numel()) + " values where this rank's shard has " +
                   std::to_string(shard_values.numel()),
         "resume with the number of ranks and train.distributed settings of the run that wrote it");
  torch::NoGradGuard no_grad;
  shard_values.copy_(values.to(shard_values.device(), shard_values.scalar_type()).view_as(shard_values));
  load_optimizer(rank_file(dir, "optimizer", rank), optimizer);
}

}  // namespace percetrain
