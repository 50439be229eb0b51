// Mixed precision: fp32 master copies of the trainable parameters of a bf16 model, which the
// optimizer owns and updates while the model computes forward and backward in its own dtype.
#pragma once

#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

namespace torch::serialize {
class OutputArchive;
}

namespace percetrain {

class CausalLMImpl;

// Writes a LibTorch archive to `path` through write_file_checked: a full disk is one error naming
// the file, never an abort in a destructor.
void save_archive(const std::string& path, torch::serialize::OutputArchive& archive);

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The parameters a run trains: every parameter of the model, by Hugging Face name; with LoRA
// adapters attached, only the adapters' A and B (lora_parameters, PEFT's names).
NamedTensors trainable_parameters(CausalLMImpl& model);

// For an fp32/fp64 model (or wanted = false) the masters are the parameters themselves and the
// calls are no-ops. Per step: release_grads, forward/backward, grads_to_master, optimizer step,
// master_to_model.
class MasterWeights {
 public:
  MasterWeights(const NamedTensors& trainable, bool wanted);
  bool active() const { return active_; }
  const std::vector<torch::Tensor>& parameters() const { return master_; }
  NamedTensors named_parameters() const;
  // Drops every gradient (model and master) instead of zeroing it: the first backward of the
  // step then writes its gradients instead of adding them to zeros (one pass over them less).
  void release_grads();
  void grads_to_master();  // model grads -> fp32 master grads; the model grads are released
  void master_to_model();  // rounds the updated masters into the model's parameters
  // Checkpoints keep the masters (master_weights.pt): resuming from the rounded weights would
  // not continue the same run. Returns whether it wrote the file (only bf16 runs have masters).
  bool save(const std::string& checkpoint_dir) const;
  void load(const std::string& checkpoint_dir);

 private:
  std::vector<std::string> names_;
  std::vector<torch::Tensor> model_, master_;
  bool active_ = false;
};

}  // namespace percetrain
