// fp32 master weights of a bf16 model: gradients in, updates out, one tensor at a time.
#include "percetrain/train/master_weights.hpp"

#include <torch/torch.h>

#include <filesystem>

#include "percetrain/model/decoder.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"

namespace fs = std::filesystem;

namespace percetrain {

NamedTensors trainable_parameters(CausalLMImpl& model) {
  if (has_lora(model)) return lora_parameters(model);  // the base is frozen
  NamedTensors out;
  for (const auto& p : model.named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

MasterWeights::MasterWeights(const NamedTensors& trainable, bool wanted) {
  for (const auto& [name, tensor] : trainable) {
    names_.push_back(name);
    model_.push_back(tensor);
  }
  if (model_.empty()) fail("train", "the model has no trainable parameters");
  const auto type = model_.front().scalar_type();
  active_ = wanted && (type == torch::kBFloat16 || type == torch::kFloat16);
  if (!active_) {
    master_ = model_;
    return;
  }
  torch::NoGradGuard no_grad;
  for (const auto& p : model_) master_.push_back(p.detach().to(torch::kFloat32).clone().requires_grad_(true));
}

NamedTensors MasterWeights::named_parameters() const {
  NamedTensors out;
  for (size_t i = 0; i < names_.size(); ++i) out.emplace_back(names_[i], master_[i]);
  return out;
}

void MasterWeights::release_grads() {
  for (auto& p : model_) p.mutable_grad() = torch::Tensor();
  if (active_)
    for (auto& p : master_) p.mutable_grad() = torch::Tensor();
}

void MasterWeights::grads_to_master() {
  if (!active_) return;
  // One tensor at a time, so that both copies of all gradients never coexist.
  for (size_t i = 0; i < model_.size(); ++i) {
    auto& grad = model_[i].mutable_grad();
    master_[i].mutable_grad() = grad.defined() ? grad.to(torch::kFloat32) : torch::Tensor();
    grad = torch::Tensor();
  }
}

void MasterWeights::master_to_model() {
  if (!active_) return;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < model_.size(); ++i) {
    model_[i].copy_(master_[i]);
    // Released until the next grads_to_master, so that the next backward's bf16 gradients do not
    // sit beside last step's fp32 ones: 18 bytes per parameter at the peak instead of 20.
    master_[i].mutable_grad() = torch::Tensor();
  }
}

void save_archive(const std::string& path, torch::serialize::OutputArchive& archive) {
  write_file_checked(path, [&](const ByteWriter& write) {
    archive.save_to([&](const void* data, size_t size) -> size_t {
      write(data, size);
      return size;
    });
  });
}

bool MasterWeights::save(const std::string& checkpoint_dir) const {
  if (!active_) return false;
  // The layout torch::save gives a vector of tensors, so torch::load reads it back.
  torch::serialize::OutputArchive archive;
  for (size_t i = 0; i < master_.size(); ++i) archive.write(std::to_string(i), master_[i]);
  save_archive((fs::path(checkpoint_dir) / "master_weights.pt").string(), archive);
  return true;
}

void MasterWeights::load(const std::string& checkpoint_dir) {
  if (!active_) return;
  const fs::path file = fs::path(checkpoint_dir) / "master_weights.pt";
  if (!fs::exists(file))
    fail(file.string(), "is missing: the checkpoint was written without fp32 master weights",
         "resume with the model.dtype and train.master_weights of the run that wrote it");
  std::vector<torch::Tensor> saved;
  try {
    torch::load(saved, file.string());
  } catch (const c10::Error& e) {
    fail(file.string(), "cannot be read: " + e.msg(), "the checkpoint is damaged; resume from an earlier one");
  }
  if (saved.size() != master_.size()) fail(file.string(), "holds a different number of tensors than the model");
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < master_.size(); ++i) master_[i].copy_(saved[i]);
}

}  // namespace percetrain
