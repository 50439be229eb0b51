// The job configuration (`--config job.json`): plain structs with defaults, one per section. The
// sections of the lower stages live with them (model/, data/, objective/); the job-level ones here.
// Every key is listed once, in src/config/config_fields.hpp, which parsing, the effective config,
// --set and the did-you-mean hints all walk.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "percetrain/data/data_config.hpp"
#include "percetrain/dist/dist_section.hpp"
#include "percetrain/model/lora_section.hpp"
#include "percetrain/model/model_section.hpp"
#include "percetrain/objective/objective_section.hpp"
#include "percetrain/util/enum_names.hpp"
#include "percetrain/util/file.hpp"

namespace percetrain {

struct TokenizerSection {
  std::string path;  // "" = the model folder
};

enum class Schedule { kConstant, kLinear, kCosine };
template <>
struct EnumNames<Schedule> {
  static constexpr std::pair<Schedule, const char*> values[] = {
      {Schedule::kConstant, "constant"}, {Schedule::kLinear, "linear"}, {Schedule::kCosine, "cosine"}};
};

// never: a fresh run; auto: continue from the newest checkpoint in output.dir when there is one.
enum class ResumePolicy { kNever, kAuto };
template <>
struct EnumNames<ResumePolicy> {
  static constexpr std::pair<ResumePolicy, const char*> values[] = {{ResumePolicy::kNever, "never"},
                                                                    {ResumePolicy::kAuto, "auto"}};
};

// Validation by generating (train.eval_generate): greedy decoding of the first `max_records`
// validation examples every `every` steps (and at the last step), scored with ROUGE-L and METEOR.
struct EvalGenerateSection {
  int64_t every = 0;            // 0 = off
  int64_t max_records = 32;     // 0 = the whole validation set
  int64_t max_new_tokens = 128;
};

// The validation number that picks best/ and drives early stopping; none = neither.
enum class BestMetric { kNone, kValidCe, kValidLoss, kValidRougeL, kValidMeteor };
template <>
struct EnumNames<BestMetric> {
  static constexpr std::pair<BestMetric, const char*> values[] = {{BestMetric::kNone, "none"},
                                                                  {BestMetric::kValidCe, "valid_ce"},
                                                                  {BestMetric::kValidLoss, "valid_loss"},
                                                                  {BestMetric::kValidRougeL, "valid_rougeL"},
                                                                  {BestMetric::kValidMeteor, "valid_meteor"}};
};

struct TrainSection {
  double lr = 2e-5;
  Schedule schedule = Schedule::kCosine;
  double warmup_ratio = 0.0;
  int64_t warmup_steps = 0;         // wins over warmup_ratio when > 0
  double min_lr_ratio = 0.0;        // floor of linear/cosine decay, as a fraction of lr
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
  double grad_clip = 1.0;           // global norm; 0 = off
  int64_t batch_size = 32;          // examples per optimizer step
  int64_t micro_batch_size = 4;     // examples per forward/backward
  int64_t epochs = 3;
  int64_t max_steps = 0;            // > 0 overrides epochs
  uint64_t seed = 42;
  int64_t log_every = 1;
  int64_t eval_every = 0;           // 0 = at the end of each epoch only
  int64_t save_every = 0;           // 0 = at the end only
  int64_t keep_last = 2;
  ResumePolicy resume = ResumePolicy::kNever;
  bool gradient_checkpointing = false;
  // With model.dtype bfloat16: keep fp32 master weights and optimizer state (16 bytes per
  // parameter plus 2+2 for the bf16 weights and gradients) instead of updating bf16 weights in
  // place (8 bytes), where small updates round away. Ignored for float32 models.
  bool master_weights = true;
  DistributedSection distributed;  // data parallelism when launched with several ranks (torchrun)
  EvalGenerateSection eval_generate;
  BestMetric best_metric = BestMetric::kNone;  // keeps the best model as output.dir/best
  int64_t early_stopping_patience = 0;         // evaluations without improvement before stopping; 0 = off
};

// Decoding defaults of `percetrain generate` (the paper decodes at temperature 0.4, at most 512
// new tokens).
struct GenerateSection {
  int64_t max_new_tokens = 512;
  double temperature = 0.4;   // 0 = greedy
  double top_p = 1.0;         // 1 = off; nucleus filtering as Hugging Face's TopPLogitsWarper
  int64_t top_k = 0;          // 0 = off
  uint64_t seed = 0;          // each record samples from its own stream seeded by (seed, id)
  std::vector<std::string> stop_strings;  // the prediction is cut before the first one
  int64_t batch_size = 8;     // prompts decoded together (left-padded)
};

struct OutputSection {
  std::string dir = "runs/job";
};

struct JobConfig {
  std::string file;  // where it was read from
  ModelSection model;
  LoraSection lora;
  TokenizerSection tokenizer;
  DataConfig data;
  ObjectiveSection objective;
  TrainSection train;
  GenerateSection generate;
  OutputSection output;
};

// Reads a job config; `overrides` are "section.key=value" strings (--set), applied before
// validation, with values parsed as JSON when they parse (numbers, true, ...) else as strings.
// Relative paths written in the config resolve against the config file's folder, those given in
// overrides against the current folder; model.path, tokenizer.path, objective.reference_model and
// lora.init_adapter may name a Hugging Face repository id in the local cache (util/hf_cache.hpp).
// Errors name the config by its absolute path, and a bad override by its --set argument (a
// UsageError: exit status 2). JobConfig::file is the absolute path.
JobConfig load_job_config(const std::string& file, const std::vector<std::string>& overrides = {});
JobConfig parse_job_config(const std::string& json_text, const std::string& file,
                           const std::vector<std::string>& overrides = {});

// The cross-key rules that depend on how many ranks run the job (parse_job_config checks all the
// others in one pass): one line naming the keys. Run before anything is loaded.
void check_launch(const JobConfig& config, int world_size);

// The effective configuration as JSON text (every key, defaults included).
std::string job_config_to_json(const JobConfig& config);

// Every key of a job config as "section.key" (nested sections as "section.sub.key").
std::vector<std::string> job_config_keys();

// The tokenizer a job uses: tokenizer.path, or the model folder when that is empty.
std::string tokenizer_path(const JobConfig& config);

// Every path the config names that a job reads: the config file, model.path, tokenizer.path,
// the data and golds files, objective.reference_model and lora.init_adapter (for
// refuse_outputs_onto_inputs).
std::vector<JobInput> job_config_inputs(const JobConfig& config);

}  // namespace percetrain
