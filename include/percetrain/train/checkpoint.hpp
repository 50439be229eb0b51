// Checkpoints of a run in output.dir: written whole under a temporary name and published by
// rename, listed, pruned to the newest keep_last, and read back for an exact resume.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace torch::optim {
class Optimizer;
}

namespace percetrain {

class CausalLMImpl;
class MasterWeights;

// What trainer_state.json records about the run that wrote a checkpoint.
struct TrainerState {
  int64_t step = 0;
  int64_t total_steps = 0;
  int64_t steps_per_epoch = 0;
  uint64_t seed = 0;
  std::string objective;
  int64_t train_examples = 0;
};

// "checkpoint-000042".
std::string checkpoint_name(int64_t step);

class Checkpointer {
 public:
  // `tokenizer_source`: the folder whose tokenizer files each checkpoint's model folder gets.
  Checkpointer(std::string out_dir, int64_t keep_last, std::string tokenizer_source);

  // Complete checkpoints (those with a trainer_state.json), by step.
  std::map<int64_t, std::string> complete() const;

  // Writes checkpoint-<step>/ (a Hugging Face model folder, optimizer.pt, master_weights.pt for
  // bf16 runs, trainer_state.json) as checkpoint-<step>.partial, renames it into place, then
  // keeps only the newest keep_last. Returns its path.
  std::string save(CausalLMImpl& model, const torch::optim::Optimizer& optimizer, const MasterWeights& masters,
                   const TrainerState& state);

  // The optimizer state and fp32 masters of the checkpoint at `dir` (the model's weights are
  // loaded from the folder itself).
  void restore(const std::string& dir, torch::optim::Optimizer& optimizer, MasterWeights& masters) const;

 private:
  std::string out_dir_, tokenizer_source_;
  int64_t keep_last_;
};

}  // namespace percetrain
