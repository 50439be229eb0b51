// LoRA in `train`: the run's adapters on the frozen base (fresh, continued from lora.init_adapter,
// or from the checkpoint being resumed), what a checkpoint holds of them, and per-user runs
// (lora.per_user: one adapter per user, one after another on one loaded base).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"
#include "percetrain/data/dataset.hpp"
#include "percetrain/train/trainer.hpp"

namespace percetrain {

class CausalLMImpl;

// Attaches the adapters a LoRA run trains to `model`, which has its device and dtype already;
// the base is frozen from then on. From `resume_from` when set (a checkpoint: the adapter and its
// dropout generator state), else from config.lora.init_adapter (its own rank, alpha, dropout and
// targets; lora.rank, when set, must agree with them), else fresh (attach_lora, seeded with
// train.seed). Returns a line for the log: the adapters and their trainable parameters.
std::string attach_run_adapters(CausalLMImpl& model, const JobConfig& config, const std::string& resume_from);

// A LoRA checkpoint's model files in `dir`: the adapter in PEFT's layout (adapter_config.json
// with base_model_name_or_path = `base`, adapter_model.safetensors) and lora_dropout.pt (the
// dropout generator, for an exact resume). Returns the names of the files written.
std::vector<std::string> write_adapter_checkpoint_files(CausalLMImpl& model, const std::string& dir,
                                                        const std::string& base);

// Before an adapter folder is read (--adapter, --adapters, lora.init_adapter, merge-adapter):
// when percetrain recorded checksums of its files (a per-user adapter, OUTPUT/adapters/<user>,
// in OUTPUT/users.json; a checkpoint in its trainer_state.json), a file that is missing or does
// not match is one error naming it. Folders without recorded checksums are read as they are.
void verify_recorded_adapter(const std::string& dir);

// A user id as a folder name under adapters/: "" when it can be one, else why not.
std::string user_folder_problem(const std::string& user);

// lora.per_user: loads the base once and trains one fresh adapter per user id of the training
// data (examples_by_user; users in sorted order) on that user's examples alone, with its own step
// plan, schedule and optimizer, seeded by train.seed and the user id, so that a user's adapter
// depends on nothing but its data. Each is validated on the user's validation examples and
// written to output.dir/adapters/<user>/ (PEFT's layout, recorded in the run manifest); users.json
// records the effective config, the data's SHA-256 and, per user, its counts and file checksums.
// --resume continues with the first user whose adapter is missing or damaged; --stop-after N
// stops after the user during which step N (counted over all users) falls; a signal stops after
// the current step and drops that user's unfinished adapter.
TrainSummary train_user_adapters(const JobConfig& config, const TrainOptions& options,
                                 const std::vector<PairedExample>& train_examples,
                                 const std::vector<PairedExample>& valid_examples, const std::string& tokenizer_path,
                                 int64_t pad_id);

}  // namespace percetrain
