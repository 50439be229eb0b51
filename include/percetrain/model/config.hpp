// The architecture description of a Hugging Face causal LM, read from its config.json.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace percetrain {

struct RopeScaling {
  std::string type = "default";  // "default" (none) or "llama3"
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string model_type;  // llama | mistral | qwen2 | qwen3
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // explicit in Qwen3 configs, else hidden_size / num_attention_heads
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v (and for llama, o) biases; always on for qwen2
  bool qk_norm = false;         // qwen3: RMSNorm over head_dim on q and k before RoPE
  int64_t sliding_window = 0;   // 0: full causal attention
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
  std::string torch_dtype = "float32";

  // The whole config.json as read, so that saving writes back every field we do not model.
  std::string raw_json;

};

// Parses and validates config.json text; `where` names the file in errors. A model_type or a
// field value that percetrain does not implement is an error, never a silent approximation.
ModelConfig parse_model_config(const std::string& json_text, const std::string& where);
ModelConfig load_model_config(const std::string& path);

// The number of parameters a model of `config` has (as a double: a hostile config must not
// overflow the count), computed without building it.
double model_parameter_count(const ModelConfig& config);

// Refuses, before anything is allocated, a model whose float32 parameters exceed the memory this
// process can still take (available RAM plus free swap): one error at `where` naming the size
// furthest above a large released model's, as `name_of(key)` spells it (a config.json key, or
// init-model's option for it).
void check_model_fits_in_memory(const ModelConfig& config, const std::string& where,
                                const std::function<std::string(const std::string& key)>& name_of);

// config.json for `config`: raw_json with the modelled fields brought up to date.
std::string model_config_to_json(const ModelConfig& config);

// init-model's shape options; an empty field keeps the preset's value.
struct ModelShapeOverrides {
  std::optional<int64_t> hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
      intermediate_size, head_dim;
};

// A small architecture preset ("tiny", "small", "medium") for init-model, with vocab_size from
// the tokenizer, then `overrides`. Every given value must be positive, hidden_size a multiple of
// num_attention_heads, num_attention_heads a multiple of num_key_value_heads, and head_dim even;
// without an explicit head_dim it follows the preset's rule (hidden / heads; twice that for qwen3).
// Errors name the command-line option.
ModelConfig preset_model_config(const std::string& arch, const std::string& preset,
                                int64_t vocab_size, const ModelShapeOverrides& overrides = {});

}  // namespace percetrain
