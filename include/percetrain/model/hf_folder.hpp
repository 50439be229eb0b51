// Loading and saving Hugging Face model folders: config.json + (sharded) safetensors weights.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "percetrain/model/decoder.hpp"
#include "percetrain/model/model_section.hpp"

namespace percetrain {

struct TensorEntry;

struct LoadedModel {
  std::string folder;
  ModelConfig config;
  CausalLM model{nullptr};
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = c10::kFloat;
};

// Reads config.json and the weights (model.safetensors, or the shards that
// model.safetensors.index.json names), converting every tensor to `dtype` and moving the model to
// `device`. Every expected tensor must be found with its shape and no stored tensor may be left
// unused; otherwise one error lists what is missing, mis-shaped or unused.
LoadedModel load_causal_lm(const std::string& folder, const c10::Device& device,
                           c10::ScalarType dtype);

// config.json's sizes against the tensors of a folder's safetensors headers (`entries`, by name),
// before anything is allocated: num_hidden_layers against the model.layers.N present, hidden_size,
// vocab_size, intermediate_size, head_dim and the head counts against the tensors that show them,
// and the parameter count against the values stored. One error naming config.json and the key.
void check_config_against_weights(const ModelConfig& config, const std::map<std::string, const TensorEntry*>& entries,
                                  const std::string& config_path);

// "model /abs/path: llama, 1.23M parameters, float32 on cpu": what every command says it loaded.
std::string describe_loaded_model(const LoadedModel& loaded);

// A model with random weights (init_weights, `seed`) from a Hugging Face config.json alone, in
// memory only: for benchmarks of real shapes without writing (or having) their weights.
LoadedModel random_causal_lm(const std::string& config_json, const c10::Device& device, c10::ScalarType dtype,
                             uint64_t seed);

// The random model `train` would initialise at model.path (model.init_arch / init_preset /
// init_seed, `tokenizer_path`'s vocabulary), in memory only: bench needs no folder on disk.
LoadedModel random_preset_lm(const ModelSection& model, const std::string& tokenizer_path, const c10::Device& device,
                             c10::ScalarType dtype);

struct SaveOptions {
  // Folder whose tokenizer files (tokenizer_file_names()) are copied along; empty: none.
  std::string tokenizer_source;
  // The model folder the weights came from: its generation_config.json (the author's decoding
  // defaults) is copied along. Without one there, generation_config.json holds the token ids of
  // config.json, as save_pretrained writes it.
  std::string model_source;
  // Shards above this many bytes of tensor data; one model.safetensors when everything fits.
  uint64_t max_shard_bytes = 5ull * 1000 * 1000 * 1000;
  // Stored dtype; c10::ScalarType::Undefined keeps the model's.
  c10::ScalarType dtype = c10::ScalarType::Undefined;
  // save_causal_lm into a folder that exists and is not empty: refused unless set (--overwrite);
  // then the model's files (weights, config.json, generation_config.json, tokenizer files) are
  // replaced and every other file there is kept.
  bool overwrite = false;
};

// Writes `model` as a Hugging Face folder at `out_dir`: everything goes into a temporary sibling
// folder first. A new or empty `out_dir` is then replaced by it with one rename; one that holds
// files is an error unless options.overwrite, which replaces the model's files in it (the whole
// folder by rename when nothing else is there) and keeps the others.
void save_causal_lm(CausalLMImpl& model, const std::string& out_dir, const SaveOptions& options = {});

// Writes the model's files (weights, config.json, tokenizer files) into the existing, empty
// `folder` and fsyncs them; returns their names.
std::vector<std::string> write_model_files(CausalLMImpl& model, const std::string& folder,
                                           const SaveOptions& options = {});

// init-model: a randomly initialised `arch`/`preset` model whose vocabulary is the tokenizer's,
// saved with the tokenizer files. Returns the number of parameters.
// `shape` overrides the preset's sizes (init-model's --hidden-size, ...). `out_dir` may not be
// or hold the tokenizer; `overwrite` as SaveOptions::overwrite.
int64_t write_random_model(const std::string& arch, const std::string& preset,
                           const std::string& tokenizer_path, const std::string& out_dir,
                           uint64_t seed, c10::ScalarType dtype = c10::kFloat,
                           const ModelShapeOverrides& shape = {}, bool overwrite = false);

}  // namespace percetrain
