// Checkpoints of a run in output.dir: written whole under a staging name, fsynced and published
// by rename through the RunDirectory (which records their files), checksummed, listed, pruned to
// the newest keep_last, verified and read back for an exact resume.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace torch::optim {
class Optimizer;
}

namespace percetrain {

class CausalLMImpl;
class Communicator;
class MasterWeights;
class RunDirectory;

// What trainer_state.json records about the run that wrote a checkpoint.
struct TrainerState {
  int64_t step = 0;
  int64_t total_steps = 0;
  int64_t steps_per_epoch = 0;
  uint64_t seed = 0;
  std::string objective;
  int64_t train_examples = 0;
  int64_t world_size = 1;  // ranks of the run; with zero > 0 each wrote its own shard files
  int64_t zero = 0;
  std::string job_config;                          // the effective config (JSON text)
  std::map<std::string, std::string> data_sha256;  // "data.train_file" -> SHA-256 of its bytes
  std::map<std::string, std::string> files;        // file of the checkpoint -> SHA-256 (filled by save)
};

// "checkpoint-42", as Hugging Face's Trainer names them (percetrain before 0.2 wrote
// "checkpoint-000042"; both are read).
std::string checkpoint_name(int64_t step);
// The folder of the checkpoint of `step` in `out_dir`: checkpoint-42, or an older run's
// checkpoint-000042 when only that exists.
std::string checkpoint_path(const std::string& out_dir, int64_t step);

// Every rank of a run holds one and calls save() at the same steps; rank 0, which owns the run
// folder, writes the checkpoint, and the barrier sequence of a sharded run lives here too.
class Checkpointer {
 public:
  // `run`: the run folder on rank 0, null on the other ranks. `tokenizer_source`: the folder
  // whose tokenizer files each checkpoint's model folder gets.
  Checkpointer(RunDirectory* run, Communicator& comm, std::string out_dir, int64_t keep_last,
               std::string tokenizer_source);

  // What a checkpoint holds of the model, written into its staging folder; returns the file
  // names. Default: the whole Hugging Face model folder. LoRA runs write the adapter alone
  // (write_adapter_checkpoint_files in train/adapters.hpp).
  using ModelWriter = std::function<std::vector<std::string>(CausalLMImpl& model, const std::string& dir)>;
  void set_model_writer(ModelWriter writer) { model_writer_ = std::move(writer); }
  // State each rank keeps for itself (ZeRO: its optimizer state and shard), which every rank
  // writes into the staging folder.
  using ShardWriter = std::function<void(const std::string& staging)>;
  void set_shard_writer(ShardWriter writer) { shard_writer_ = std::move(writer); }

  // Published checkpoints this run folder's manifest records, by step (paths). Rank 0 only.
  std::map<int64_t, std::string> complete() const;
  // The newest of them whose files match their checksums; "" when none. Rank 0 only.
  std::string newest_intact() const;

  // Every rank, at the same step: writes checkpoint-<step>/ (a Hugging Face model folder,
  // optimizer.pt unless `optimizer` is null, master_weights.pt for bf16 runs, the shard writer's
  // files, trainer_state.json with the SHA-256 of every other file), publishes it, then keeps only
  // the newest keep_last. With several ranks and a shard writer, every rank adds its files to the
  // staging folder between two barriers; a last barrier says the checkpoint is published. Any
  // failed write is one error naming the file. Returns its path.
  std::string save(CausalLMImpl& model, const torch::optim::Optimizer* optimizer, const MasterWeights& masters,
                   const TrainerState& state);

  // trainer_state.json of the checkpoint at `dir`; an error names what is wrong with it.
  static TrainerState read_state(const std::string& dir);
  // "" when trainer_state.json reads and every file it lists matches its checksum; else what is
  // wrong ("optimizer.pt does not match its checksum").
  static std::string verify(const std::string& dir);

 private:
  std::string write(CausalLMImpl& model, const torch::optim::Optimizer* optimizer, const MasterWeights& masters,
                    const TrainerState& state);

  RunDirectory* run_;
  Communicator& comm_;
  std::string out_dir_, tokenizer_source_;
  int64_t keep_last_;
  ModelWriter model_writer_;
  ShardWriter shard_writer_;
};

// optimizer.pt and master_weights.pt of the checkpoint at `dir` into a run that replicates them.
void restore_training_state(const std::string& dir, torch::optim::Optimizer& optimizer, MasterWeights& masters);

// ZeRO: rank `rank`'s optimizer state and fp32 shard values, optimizer-rank-NNNNN.pt and
// shard-rank-NNNNN.pt inside a checkpoint (or its staging folder).
void save_shard_state(const std::string& dir, int rank, const torch::optim::Optimizer& optimizer,
                      const at::Tensor& shard_values);
void restore_shard_state(const std::string& dir, int rank, torch::optim::Optimizer& optimizer,
                         const at::Tensor& shard_values);

}  // namespace percetrain
