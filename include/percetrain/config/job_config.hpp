// The job configuration (`--config job.json`): plain structs with defaults, one per section.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "percetrain/data/data_config.hpp"

namespace percetrain {

struct ModelSection {
  std::string path;             // Hugging Face model folder
  std::string device = "auto";  // cpu | cuda | cuda:N | auto
  std::string dtype = "auto";   // float32 | bfloat16 | float16 | auto
  // init-model on the fly when `path` does not exist yet (demo and CI): arch + preset + seed.
  std::string init_arch;
  std::string init_preset = "tiny";
  uint64_t init_seed = 0;
};

struct TokenizerSection {
  std::string path;  // "" = the model folder
};

struct ObjectiveSection {
  std::string name = "perce";        // ce | perce | lossce | entce
  double clip_min = 0.8;             // m in the paper
  double clip_max = 5.0;             // M in the paper
  std::string normalize = "tokens";  // tokens | sequences
  int64_t chunk_tokens = 0;          // positions per vocabulary-projection chunk; 0 = 256 MiB budget
};

struct TrainSection {
  double lr = 2e-5;
  std::string schedule = "cosine";  // constant | linear | cosine
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
  std::string resume = "never";     // never | auto (continue from the newest checkpoint)
  bool gradient_checkpointing = false;
  // With model.dtype bfloat16: keep fp32 master weights and optimizer state (16 bytes per
  // parameter plus 2+2 for the bf16 weights and gradients) instead of updating bf16 weights in
  // place (8 bytes), where small updates round away. Ignored for float32 models.
  bool master_weights = true;
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
  TokenizerSection tokenizer;
  DataConfig data;
  ObjectiveSection objective;
  TrainSection train;
  GenerateSection generate;
  OutputSection output;
};

// Reads a job config; `overrides` are "section.key=value" strings (--set), applied before
// validation, with values parsed as JSON when they parse (numbers, true, ...) else as strings.
// Relative paths in the config are resolved against the config file's folder.
JobConfig load_job_config(const std::string& file, const std::vector<std::string>& overrides = {});
JobConfig parse_job_config(const std::string& json_text, const std::string& file,
                           const std::vector<std::string>& overrides = {});

// The effective configuration as JSON text (every key, defaults included).
std::string job_config_to_json(const JobConfig& config);

}  // namespace percetrain
