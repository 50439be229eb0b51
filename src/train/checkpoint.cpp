// Checkpoint folders: staged, renamed into place, pruned, restored.
#include "percetrain/train/checkpoint.hpp"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "percetrain/model/hf_folder.hpp"
#include "percetrain/train/master_weights.hpp"
#include "percetrain/util/file.hpp"

namespace fs = std::filesystem;

namespace percetrain {

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "checkpoint-%06lld", static_cast<long long>(step));
  return buf;
}

Checkpointer::Checkpointer(std::string out_dir, int64_t keep_last, std::string tokenizer_source)
    : out_dir_(std::move(out_dir)), tokenizer_source_(std::move(tokenizer_source)), keep_last_(keep_last) {}

std::map<int64_t, std::string> Checkpointer::complete() const {
  std::map<int64_t, std::string> found;
  if (!fs::is_directory(out_dir_)) return found;
  static const std::regex pattern("checkpoint-([0-9]+)");
  for (const auto& entry : fs::directory_iterator(out_dir_)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, m, pattern) && fs::exists(entry.path() / "trainer_state.json"))
      found[std::stoll(m[1])] = entry.path().string();
  }
  return found;
}

std::string Checkpointer::save(CausalLMImpl& model, const torch::optim::Optimizer& optimizer,
                               const MasterWeights& masters, const TrainerState& state) {
  const fs::path out(out_dir_);
  const fs::path final_dir = out / checkpoint_name(state.step);
  const fs::path staging = out / (checkpoint_name(state.step) + ".partial");
  SaveOptions save;
  save.tokenizer_source = tokenizer_source_;
  save_causal_lm(model, staging.string(), save);
  torch::save(optimizer, (staging / "optimizer.pt").string());
  masters.save(staging.string());
  const nlohmann::json j = {{"step", state.step},
                            {"total_steps", state.total_steps},
                            {"steps_per_epoch", state.steps_per_epoch},
                            {"seed", state.seed},
                            {"objective", state.objective},
                            {"train_examples", state.train_examples}};
  write_file_atomic((staging / "trainer_state.json").string(), j.dump(2) + "\n");
  fs::remove_all(final_dir);
  fs::rename(staging, final_dir);
  auto checkpoints = complete();
  while (static_cast<int64_t>(checkpoints.size()) > keep_last_) {
    fs::remove_all(checkpoints.begin()->second);
    checkpoints.erase(checkpoints.begin());
  }
  return final_dir.string();
}

void Checkpointer::restore(const std::string& dir, torch::optim::Optimizer& optimizer, MasterWeights& masters) const {
  masters.load(dir);
  torch::load(optimizer, (fs::path(dir) / "optimizer.pt").string());
}

}  // namespace percetrain
