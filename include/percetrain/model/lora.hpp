// LoRA adapters on a CausalLM's Hugging Face-named projections: attach, train (the base frozen),
// merge into the base weights, and save / read them in PEFT's layout (adapter_config.json +
// adapter_model.safetensors) so that PEFT, vLLM and transformers load them unchanged.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "percetrain/model/decoder.hpp"
#include "percetrain/model/lora_section.hpp"

namespace percetrain {

using LoraTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Each adapted projection computes y = W x (+ b) + scaling * B A dropout(x), with
// scaling = alpha / rank (alpha / sqrt(rank) with use_rslora), A [r, in] and B [out, r] as PEFT's
// lora_A.weight / lora_B.weight. A and B are float32 (float64 on a float64 base) whatever the
// base's dtype: the adapter's input is cast up, its term added to the base output in that
// precision and the sum rounded once to the base's dtype, as PEFT does on a bf16 base. Dropout
// acts in training mode outside inference mode only, with masks that are a pure function of
// (dropout seed, step, sample, projection, element of the sample's input): see
// set_lora_dropout_rows. Adapters are not registered modules: named_parameters(), save_causal_lm
// and model->to() see the base alone, so attach after the model has its device and dtype.

// Adds an adapter to `lora.target_modules` of every layer: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's
// kaiming_uniform_(a = sqrt(5))) from a generator seeded with `seed`, B = 0, so the model computes
// exactly what the base does until B moves; dropout masks are keyed by seed + 1. A and B require grad; every base parameter is frozen (requires_grad false). An error
// when the model has adapters already or lora.rank is 0.
void attach_lora(CausalLMImpl& model, const LoraSection& lora, uint64_t seed);

bool has_lora(CausalLMImpl& model);

// The settings the attached adapters were made with, target_modules expanded. Error without.
LoraSection lora_settings(CausalLMImpl& model);

// The adapters' tensors (the live ones, not copies) under PEFT's names, e.g.
// base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight: layer by layer, projections in
// lora_module_names() order, A before B. With adapters these are all that trains.
LoraTensors lora_parameters(CausalLMImpl& model);

// What lora_parameters holds for `lora` on a model of `config`: layers x sum over the targeted
// projections of rank * (in + out).
int64_t lora_parameter_count(const ModelConfig& config, const LoraSection& lora);

// Elements of every tensor that requires grad: base parameters and adapters.
int64_t trainable_parameter_count(CausalLMImpl& model);

// W += scaling * B A in the adapter's precision, rounded once to W's dtype; the adapters stay
// attached but add nothing until unmerge_lora (W -= the same; exact only up to that rounding).
void merge_lora(CausalLMImpl& model);
void unmerge_lora(CausalLMImpl& model);

// Removes the adapters and leaves the base weights as they are (merged: PEFT's merge_and_unload;
// not merged: the base model again) with every base parameter trainable again.
void detach_lora(CausalLMImpl& model);

// Which optimizer step and which samples (global example indices, one per batch row) the next
// forwards compute, for LoRA dropout. The mask of element (token t, feature j) of a sample's input
// to an adapted projection is drawn by a counter-based hash (SplitMix64) of (dropout seed, step,
// sample, projection, t * in + j): it does not depend on the micro-batch, the row, the rank or the
// padding, so several ranks and any train.micro_batch_size drop what one rank drops, gradient
// checkpointing's recomputation drops what the forward dropped, and a resumed run needs no saved
// generator. Until set, and after clear_lora_dropout_rows, row b is sample b of step 0.
void set_lora_dropout_rows(CausalLMImpl& model, int64_t step, std::vector<int64_t> samples);
void clear_lora_dropout_rows(CausalLMImpl& model);

// Writes adapter_config.json (the keys PEFT 0.10-0.13 writes; target_modules expanded) and
// adapter_model.safetensors (float32, metadata {"format": "pt"}) into the existing folder `dir`,
// each file atomically: for a checkpoint folder being assembled.
void write_lora_adapter(CausalLMImpl& model, const std::string& dir, const std::string& base_model_name_or_path);

// The same as a folder of its own (util/file's write_folder_whole): written beside `out_dir` and
// renamed into place when complete; an earlier adapter's two files there are replaced, anything
// else in the folder is kept.
void save_lora_adapter(CausalLMImpl& model, const std::string& out_dir, const std::string& base_model_name_or_path);

// Reads a PEFT LoRA adapter folder and attaches it to `model` as attach_lora does, with the stored
// A and B (trainable; dropout masks keyed by dropout_seed). Extra keys PEFT writes are
// accepted; anything percetrain cannot apply exactly is one error naming the file and the key or
// tensor: not LORA, bias, DoRA, modules_to_save, per-module ranks, unknown modules, a rank or
// shape that does not fit the config or the base, a missing lora_A / lora_B.
LoraSection load_lora_adapter(CausalLMImpl& model, const std::string& dir, uint64_t dropout_seed = 0);

// A folder of per-user adapters: one PEFT adapter folder per user, named by the user id (what
// `train` with lora.per_user writes under output.dir/adapters/). Applied to one model one user at
// a time: use() swaps adapters only when the user changes, so callers visit records user by user.
class AdapterLibrary {
 public:
  // Lists the subfolders that hold adapter_config.json; an error when `dir` is not a folder or
  // holds none. `verify`, when given, runs on a user's folder before its adapter is first loaded
  // (the recorded checksums: verify_recorded_adapter in train/adapters.hpp).
  explicit AdapterLibrary(const std::string& dir, std::function<void(const std::string& folder)> verify = {});
  const std::string& dir() const { return dir_; }
  size_t size() const { return folders_.size(); }
  bool has(const std::string& user) const { return folders_.count(user) > 0; }
  // After this `model` carries `user`'s adapter, or none when the user has none ("" included).
  void use(CausalLMImpl& model, const std::string& user);

  struct Assignment {
    std::vector<std::string> groups;  // per record: its user when that user has an adapter, else ""
    int64_t records_with = 0, records_without = 0, users_with = 0, users_without = 0;
    std::string summary;  // one line for the log: how many records run on the base
  };
  // Which adapter each record (`users`, one per record) gets. An error when none of the users
  // has one (a wrong data.user_key or folder, most likely).
  Assignment assign(const std::vector<std::string>& users) const;

 private:
  std::string dir_;
  std::map<std::string, std::string> folders_;  // user -> adapter folder
  std::string current_;                         // whose adapter is attached; "" = none
  std::function<void(const std::string&)> verify_;
  std::set<std::string> verified_;              // users whose folder passed verify_
};

struct MergedAdapter {
  LoraSection lora;          // as read, target_modules expanded
  int64_t modules = 0;       // projections merged
  c10::ScalarType dtype{};   // stored dtype of the merged folder
};

// merge-adapter: the base folder plus the adapter folder -> a Hugging Face folder at `out_dir`
// with W + scaling * B A (computed in float32, rounded once to `dtype`; Undefined: the base's
// torch_dtype) and the base's tokenizer files. `out_dir` may neither be, lie in nor hold an input
// folder; one that exists and is not empty is written over only with `overwrite`
// (SaveOptions::overwrite: the model's files are replaced, the others kept).
MergedAdapter merge_adapter_folder(const std::string& base_dir, const std::string& adapter_dir,
                                   const std::string& out_dir, c10::ScalarType dtype = c10::ScalarType::Undefined,
                                   bool overwrite = false);

}  // namespace percetrain
