// LoRA in `train`: the run's adapters on the frozen base (fresh, continued from lora.init_adapter,
// or from the checkpoint being resumed), what a checkpoint holds of them, and their verification.
// Per-user runs (lora.per_user) are in per_user.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"

namespace percetrain {

class CausalLMImpl;

// "LoRA adapters (<origin>): r 8, alpha 16 ...; 12288 trainable parameters, 0.9% of the base's ...".
std::string describe_adapters(CausalLMImpl& model, const std::string& origin);

// Attaches the adapters a LoRA run trains to `model`, which has its device and dtype already;
// the base is frozen from then on. From `resume_from` when set (a checkpoint's adapter; dropout
// masks need no saved state, and an older checkpoint's lora_dropout.pt is ignored), else from
// config.lora.init_adapter (its own rank, alpha, dropout and targets; lora.rank, when set, must
// agree with them), else fresh (attach_lora, seeded with train.seed). Returns a line for the log:
// the adapters and their trainable parameters.
std::string attach_run_adapters(CausalLMImpl& model, const JobConfig& config, const std::string& resume_from);

// A LoRA checkpoint's model files in `dir`: the adapter in PEFT's layout (adapter_config.json
// with base_model_name_or_path = `base`, adapter_model.safetensors). Returns the names of the
// files written.
std::vector<std::string> write_adapter_checkpoint_files(CausalLMImpl& model, const std::string& dir,
                                                        const std::string& base);

// Before an adapter folder is read (--adapter, --adapters, lora.init_adapter, merge-adapter):
// when percetrain recorded checksums of its files (a per-user adapter, OUTPUT/adapters/<user>,
// in OUTPUT/users.json; a checkpoint in its trainer_state.json), a file that is missing or does
// not match is one error naming it. Folders without recorded checksums are read as they are.
void verify_recorded_adapter(const std::string& dir);

// A user id as a folder name under adapters/: "" when it can be one, else why not.
std::string user_folder_problem(const std::string& user);

}  // namespace percetrain
