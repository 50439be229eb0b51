// lora.per_user: one LoRA adapter per user id of the training data, on one loaded base.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "percetrain/config/job_config.hpp"
#include "percetrain/data/dataset.hpp"
#include "percetrain/train/trainer.hpp"

namespace percetrain {

// OUTPUT/users.json: the effective config, the data's SHA-256 and, per user, its counts and the
// checksums of its adapter's files.
inline constexpr const char* kPerUserStateFile = "users.json";
inline constexpr const char* kPerUserStateFormat = "percetrain per-user adapters";

// Loads the base once and trains one fresh adapter per user id of the training data
// (examples_by_user; users in sorted order) on that user's examples alone, with its own step
// plan, schedule and optimizer, seeded by train.seed and the user id, so that a user's adapter
// depends on nothing but its data. The steps run through the same phases as `train` (the run
// folder's rules, rho1's reference model, metrics rows, validation at train.eval_every and epoch
// ends on the user's own validation examples, non-finite losses, signals). Each adapter is written
// to output.dir/adapters/<user>/ (PEFT's layout, recorded in the run manifest and users.json).
// --resume continues with the first user whose adapter is missing or damaged; --stop-after N
// stops after the user during which step N (counted over all users) falls; a signal stops after
// the current step and drops that user's unfinished adapter (or, at a user's last step, after
// writing it).
TrainSummary train_user_adapters(const JobConfig& config, const TrainOptions& options,
                                 const std::vector<PairedExample>& train_examples,
                                 const std::vector<PairedExample>& valid_examples, const std::string& tokenizer_path,
                                 int64_t pad_id);

}  // namespace percetrain
