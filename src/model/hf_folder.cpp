// Hugging Face model folders: name-by-name weight loading with complete checks, and saving.
#include "percetrain/model/hf_folder.hpp"

#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "percetrain/io/safetensors.hpp"
#include "percetrain/tokenizer/tokenizer.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"

namespace fs = std::filesystem;

namespace percetrain {
namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), "cannot open file");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}


// The safetensors files of a folder, from the shard index when there is one.
std::vector<std::string> weight_files(const fs::path& folder) {
  const fs::path index = folder / "model.safetensors.index.json";
  if (fs::exists(index)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text(index));
    } catch (const nlohmann::json::exception& e) {
      fail(index.string(), std::string("not valid JSON: ") + e.what());
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      fail(index.string(), "no 'weight_map' object", "is the shard index complete?");
    std::set<std::string> files;
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) fail(index.string(), "weight_map entry '" + name + "' is not a file name");
      const std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f == "..")
        fail(index.string(), "weight_map entry '" + name + "' points outside the folder: " + f);
      files.insert(f);
    }
    std::vector<std::string> paths;
    for (const auto& f : files) {
      if (!fs::exists(folder / f)) fail((folder / f).string(), "shard named in model.safetensors.index.json is missing");
      paths.push_back((folder / f).string());
    }
    return paths;
  }
  if (fs::exists(folder / "model.safetensors")) return {(folder / "model.safetensors").string()};
  if (fs::exists(folder / "pytorch_model.bin") || fs::exists(folder / "pytorch_model.bin.index.json"))
    fail(folder.string(), "holds PyTorch .bin weights, which percetrain does not read",
         "convert them to safetensors, e.g. save_pretrained(..., safe_serialization=True)");
  fail(folder.string(), "no model.safetensors or model.safetensors.index.json",
       "point --model at a Hugging Face model folder");
}

std::string list_names(const std::vector<std::string>& names) {
  std::string out;
  const size_t shown = std::min<size_t>(names.size(), 8);
  for (size_t i = 0; i < shown; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > shown) out += " and " + std::to_string(names.size() - shown) + " more";
  return out;
}

// Buffers Hugging Face itself ignores when loading (stale rotary caches of old checkpoints).
bool ignorable_tensor(const std::string& name) {
  const std::string suffix = "rotary_emb.inv_freq";
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string config_key(const std::string& key) { return "'" + key + "'"; }

std::string init_model_option(const std::string& key) {
  return key == "num_hidden_layers"     ? "--layers"
         : key == "hidden_size"         ? "--hidden-size"
         : key == "intermediate_size"   ? "--intermediate-size"
         : key == "num_attention_heads" ? "--heads"
                                        : "the tokenizer's vocab_size";
}

// The first dimension of a stored tensor, or -1 when the tensor is absent or not of `rank` dims.
int64_t stored_dim(const std::map<std::string, const TensorEntry*>& entries, const std::string& name, size_t rank,
                   size_t dim) {
  const auto it = entries.find(name);
  return it == entries.end() || it->second->shape.size() != rank ? -1 : it->second->shape[dim];
}

}  // namespace

void check_config_against_weights(const ModelConfig& c, const std::map<std::string, const TensorEntry*>& entries,
                                  const std::string& config_path) {
  const std::string hint = "is config.json from the same checkpoint as the weights?";
  auto disagree = [&](const std::string& key, int64_t value, const std::string& stored) {
    fail(config_path, "'" + key + "' is " + std::to_string(value) + ", but " + stored, hint);
  };
  // Layers: the last N of model.layers.N.* must be num_hidden_layers - 1.
  const std::string prefix = "model.layers.";
  std::set<int64_t> layers;
  for (const auto& [name, entry] : entries) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    size_t i = prefix.size();
    int64_t n = 0;
    while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) && n < (int64_t(1) << 40))
      n = n * 10 + (name[i++] - '0');
    if (i > prefix.size() && i < name.size() && name[i] == '.') layers.insert(n);
  }
  // (A gap below the last one is reported with the missing tensors' names, after this.)
  if (layers.empty() || *layers.rbegin() + 1 != c.num_hidden_layers)
    disagree("num_hidden_layers", c.num_hidden_layers,
             layers.empty() ? "the weights hold no model.layers.N tensors"
                            : "the weights hold layers model.layers." + std::to_string(*layers.begin()) +
                                  " to model.layers." + std::to_string(*layers.rbegin()));
  // The sizes, from the tensors that show them; a tensor that is absent is reported (as missing)
  // by the name-by-name check after these.
  const int64_t vocab = stored_dim(entries, "model.embed_tokens.weight", 2, 0);
  const int64_t hidden = stored_dim(entries, "model.embed_tokens.weight", 2, 1);
  const int64_t norm = stored_dim(entries, "model.norm.weight", 1, 0);
  if (hidden >= 0 && hidden != c.hidden_size)
    disagree("hidden_size", c.hidden_size, "model.embed_tokens.weight has " + std::to_string(hidden) + " columns");
  if (norm >= 0 && norm != c.hidden_size)
    disagree("hidden_size", c.hidden_size, "model.norm.weight has " + std::to_string(norm) + " entries");
  if (vocab >= 0 && vocab != c.vocab_size)
    disagree("vocab_size", c.vocab_size, "model.embed_tokens.weight has " + std::to_string(vocab) + " rows");
  const int64_t head = stored_dim(entries, "lm_head.weight", 2, 0);
  if (head >= 0 && head != c.vocab_size)
    disagree("vocab_size", c.vocab_size, "lm_head.weight has " + std::to_string(head) + " rows");
  const std::string layer0 = prefix + std::to_string(layers.empty() ? 0 : *layers.begin()) + ".";
  const int64_t mlp = stored_dim(entries, layer0 + "mlp.gate_proj.weight", 2, 0);
  if (mlp >= 0 && mlp != c.intermediate_size)
    disagree("intermediate_size", c.intermediate_size,
             layer0 + "mlp.gate_proj.weight has " + std::to_string(mlp) + " rows");
  const int64_t head_dim = stored_dim(entries, layer0 + "self_attn.q_norm.weight", 1, 0);
  if (c.qk_norm && head_dim >= 0 && head_dim != c.head_dim)
    disagree("head_dim", c.head_dim, layer0 + "self_attn.q_norm.weight has " + std::to_string(head_dim) + " entries");
  const int64_t q = stored_dim(entries, layer0 + "self_attn.q_proj.weight", 2, 0);
  if (q >= 0 && q != c.num_attention_heads * c.head_dim)
    disagree("num_attention_heads", c.num_attention_heads,
             "with head_dim " + std::to_string(c.head_dim) + " that needs " +
                 std::to_string(c.num_attention_heads * c.head_dim) + " rows and " + layer0 +
                 "self_attn.q_proj.weight has " + std::to_string(q));
  const int64_t kv = stored_dim(entries, layer0 + "self_attn.k_proj.weight", 2, 0);
  if (kv >= 0 && kv != c.num_key_value_heads * c.head_dim)
    disagree("num_key_value_heads", c.num_key_value_heads,
             "with head_dim " + std::to_string(c.head_dim) + " that needs " +
                 std::to_string(c.num_key_value_heads * c.head_dim) + " rows and " + layer0 +
                 "self_attn.k_proj.weight has " + std::to_string(kv));
  // Whatever no tensor above shows (its tensor is absent): every parameter is loaded from a stored
  // tensor of its shape, so a config that describes far more parameters than the files hold
  // values can never load. A small excess is left to the name-by-name report after this, which
  // names the missing tensors; building the model then takes at most about twice the stored size.
  double stored_values = 0;
  for (const auto& [name, entry] : entries) {
    double n = 1;
    for (int64_t d : entry->shape) n *= static_cast<double>(d);
    stored_values += n;
  }
  const double needed = model_parameter_count(c);
  if (needed > 2 * stored_values + double(1 << 24)) {
    char text[96];
    std::snprintf(text, sizeof(text), "describes %.4g parameters, but the weights hold %.4g values", needed,
                  stored_values);
    fail(config_path, text, hint);
  }
}

LoadedModel random_causal_lm(const std::string& config_json, const c10::Device& device, c10::ScalarType dtype,
                             uint64_t seed) {
  std::ifstream in(config_json, std::ios::binary);
  if (!in) fail(config_json, "cannot open the model config");
  std::ostringstream text;
  text << in.rdbuf();
  LoadedModel loaded;
  loaded.folder = config_json;
  loaded.config = parse_model_config(text.str(), config_json);
  check_model_fits_in_memory(loaded.config, config_json, config_key);
  loaded.model = CausalLM(loaded.config);
  init_weights(*loaded.model, seed, 0.02);
  loaded.model->to(device, dtype);
  loaded.device = device;
  loaded.dtype = dtype;
  return loaded;
}

LoadedModel load_causal_lm(const std::string& folder, const c10::Device& device, c10::ScalarType dtype) {
  const fs::path dir(folder);
  if (!fs::is_directory(dir)) fail(folder, "is not a folder", "point --model at a Hugging Face model folder");
  LoadedModel loaded;
  loaded.folder = folder;
  const std::string config_path = (dir / "config.json").string();
  loaded.config = load_model_config(config_path);
  loaded.device = device;
  loaded.dtype = dtype;

  // The headers first (nothing but the mapping is read): config.json's sizes are checked against
  // the tensors that are there before a model of those sizes is built.
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, std::pair<const SafetensorsFile*, const TensorEntry*>> stored;
  for (const auto& path : weight_files(dir)) {
    files.push_back(std::make_unique<SafetensorsFile>(path));
    for (const auto& entry : files.back()->entries()) {
      if (stored.count(entry.name))
        fail(path, "tensor '" + entry.name + "' is also stored in " + stored[entry.name].first->path());
      stored[entry.name] = {files.back().get(), &entry};
    }
  }
  std::map<std::string, const TensorEntry*> entries;
  for (const auto& [name, where] : stored) entries[name] = where.second;
  check_config_against_weights(loaded.config, entries, config_path);

  loaded.model = CausalLM(loaded.config);
  loaded.model->to(dtype);

  std::vector<std::string> missing, misshaped;
  std::set<std::string> used;
  {
    torch::NoGradGuard no_grad;
    for (auto& item : loaded.model->named_parameters()) {
      auto it = stored.find(item.key());
      if (it == stored.end()) {
        missing.push_back(item.key());
        continue;
      }
      const TensorEntry& entry = *it->second.second;
      if (c10::IntArrayRef(entry.shape) != item.value().sizes()) {
        misshaped.push_back(item.key() + " " + shape_string(entry.shape) + " (expected " +
                            shape_string(item.value().sizes()) + ")");
        continue;
      }
      item.value().copy_(it->second.first->load(entry.name, dtype));
      used.insert(item.key());
    }
  }
  std::vector<std::string> unused;
  for (const auto& [name, where] : stored)
    if (!used.count(name) && !ignorable_tensor(name)) unused.push_back(name);
  // Names that are both missing and mis-shaped never happen; report every kind in one line.
  std::string problems;
  if (!missing.empty()) problems += "missing tensors: " + list_names(missing);
  if (!misshaped.empty()) problems += std::string(problems.empty() ? "" : "; ") + "wrong shapes: " + list_names(misshaped);
  if (!unused.empty()) problems += std::string(problems.empty() ? "" : "; ") + "unused tensors: " + list_names(unused);
  if (!problems.empty())
    fail(folder, "weights do not match config.json (" + loaded.config.model_type + "): " + problems,
         "is config.json from the same checkpoint as the weights?");

  loaded.model->to(device);
  return loaded;
}

std::vector<std::string> write_model_files(CausalLMImpl& model, const std::string& folder, const SaveOptions& options) {
  const fs::path dir(folder);
  std::vector<std::string> written;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  c10::ScalarType stored_dtype = options.dtype;
  for (const auto& item : model.named_parameters()) {
    auto t = item.value().detach();
    if (stored_dtype == c10::ScalarType::Undefined) stored_dtype = t.scalar_type();
    tensors.emplace_back(item.key(), t.to(torch::kCPU, stored_dtype).contiguous());
  }

  // Greedy sharding in parameter order, as transformers' save_pretrained does.
  std::vector<std::vector<std::pair<std::string, at::Tensor>>> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (auto& named : tensors) {
    const uint64_t bytes = named.second.numel() * named.second.element_size();
    if (shard_bytes > 0 && shard_bytes + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(named);
    shard_bytes += bytes;
    total_bytes += bytes;
  }
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  if (shards.size() == 1) {
    write_safetensors((dir / "model.safetensors").string(), shards[0], metadata);
    written.push_back("model.safetensors");
  } else {
    nlohmann::json weight_map = nlohmann::json::object();
    char name[64];
    for (size_t i = 0; i < shards.size(); ++i) {
      std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      write_safetensors((dir / name).string(), shards[i], metadata);
      written.push_back(name);
      for (const auto& named : shards[i]) weight_map[named.first] = name;
    }
    nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    write_file_atomic((dir / "model.safetensors.index.json").string(), index.dump(2) + "\n");
    written.push_back("model.safetensors.index.json");
  }

  ModelConfig config = model.config();
  config.torch_dtype = dtype_name(stored_dtype);
  write_file_atomic((dir / "config.json").string(), model_config_to_json(config));
  written.push_back("config.json");
  if (!options.tokenizer_source.empty()) {
    const fs::path source(options.tokenizer_source);
    const fs::path source_dir = fs::is_directory(source) ? source : source.parent_path();
    for (const auto& file : tokenizer_file_names())
      if (file != "generation_config.json" && fs::exists(source_dir / file)) {
        fs::copy_file(source_dir / file, dir / file);
        written.push_back(file);
      }
  }
  // generation_config.json, which transformers' generate() and vLLM read beside config.json: the
  // model's own (its author's decoding defaults), else the tokenizer folder's, else the token ids
  // of config.json, as save_pretrained writes it.
  std::error_code ec;
  std::vector<fs::path> sources;
  if (!options.model_source.empty()) sources.push_back(fs::path(options.model_source) / "generation_config.json");
  if (!options.tokenizer_source.empty()) {
    const fs::path source(options.tokenizer_source);
    sources.push_back((fs::is_directory(source, ec) ? source : source.parent_path()) / "generation_config.json");
  }
  const auto found = std::find_if(sources.begin(), sources.end(),
                                  [&](const fs::path& p) { return fs::is_regular_file(p, ec); });
  if (found != sources.end()) {
    fs::copy_file(*found, dir / "generation_config.json");
    written.push_back("generation_config.json");
  } else if (config.bos_token_id >= 0 || config.eos_token_id >= 0) {
    nlohmann::json generation = {{"_from_model_config", true}};
    if (config.bos_token_id >= 0) generation["bos_token_id"] = config.bos_token_id;
    if (config.eos_token_id >= 0) generation["eos_token_id"] = config.eos_token_id;
    write_file_atomic((dir / "generation_config.json").string(), generation.dump(2) + "\n");
    written.push_back("generation_config.json");
  }
  fsync_tree(folder);
  return written;
}

namespace {

// The files of a model folder that percetrain writes (weights, their index, config.json,
// tokenizer files): what --overwrite replaces, or removes when the new model does not have them
// (old shards beside a new single file). The rest is not ours.
bool replaced_by_save(const std::string& name) {
  static const std::regex shard("model-[0-9]{5}-of-[0-9]{5}\\.safetensors");
  const auto& tokenizer_files = tokenizer_file_names();
  return name == "config.json" || name == "generation_config.json" || name == "model.safetensors" ||
         name == "model.safetensors.index.json" ||
         std::regex_match(name, shard) ||
         std::find(tokenizer_files.begin(), tokenizer_files.end(), name) != tokenizer_files.end();
}

}  // namespace

void save_causal_lm(CausalLMImpl& model, const std::string& out_dir, const SaveOptions& options) {
  FolderWrite how;
  how.what = "the model";
  how.kind = "a model folder";
  how.overwrite = options.overwrite;  // a model folder that exists is somebody's finished model
  how.ours = replaced_by_save;
  write_folder_whole(out_dir, [&](const std::string& staging) { return write_model_files(model, staging, options); },
                     how);
}

LoadedModel random_preset_lm(const ModelSection& model, const std::string& tokenizer_path, const c10::Device& device,
                             c10::ScalarType dtype) {
  auto tokenizer = load_tokenizer(tokenizer_path);
  LoadedModel loaded;
  loaded.folder = model.path + " (not written: random " + model.init_arch + "/" + model.init_preset + " weights)";
  loaded.config = preset_model_config(model.init_arch, model.init_preset, tokenizer->vocab_size());
  check_model_fits_in_memory(loaded.config, "model.init_preset", config_key);
  loaded.model = CausalLM(loaded.config);
  init_weights(*loaded.model, model.init_seed);
  loaded.model->to(device, dtype);
  loaded.device = device;
  loaded.dtype = dtype;
  return loaded;
}

int64_t write_random_model(const std::string& arch, const std::string& preset,
                           const std::string& tokenizer_path, const std::string& out_dir,
                           uint64_t seed, c10::ScalarType dtype, const ModelShapeOverrides& shape, bool overwrite) {
  std::error_code ec;
  refuse_outputs_onto_inputs({{out_dir, "--out", true}},
                             {{tokenizer_path, "--tokenizer", fs::is_directory(tokenizer_path, ec)}});
  auto tokenizer = load_tokenizer(tokenizer_path);
  ModelConfig config = preset_model_config(arch, preset, tokenizer->vocab_size(), shape);
  config.bos_token_id = tokenizer->bos_id();
  config.eos_token_id = tokenizer->eos_id();
  check_model_fits_in_memory(config, "init-model", init_model_option);
  CausalLM model(config);
  init_weights(*model, seed);
  SaveOptions save;
  save.tokenizer_source = tokenizer_path;
  save.dtype = dtype;
  save.overwrite = overwrite;
  save_causal_lm(*model, out_dir, save);
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  return params;
}

std::string prepare_model_folder(const ModelSection& model, const std::string& tokenizer_path, bool may_initialise) {
  const fs::path path = fs::absolute(fs::path(model.path)).lexically_normal();
  std::error_code ec;
  if (fs::exists(path / "config.json", ec)) return "";
  if (fs::exists(path, ec))
    fail(path.string(), fs::is_directory(path, ec) ? "is not a Hugging Face model folder (no config.json)" : "is a file, not a model folder",
         "set model.path to a folder holding config.json and *.safetensors");
  if (model.init_arch.empty())
    fail(path.string(), "does not exist", "set model.path to a Hugging Face model folder (config.json, *.safetensors)");
  if (!may_initialise)
    fail(path.string(), "does not exist",
         "only `train` creates a random model from model.init_arch; train first, or point model.path at a model folder");
  const int64_t params =
      write_random_model(model.init_arch, model.init_preset, tokenizer_path, path.string(), model.init_seed);
  return "initialising a random " + model.init_arch + "/" + model.init_preset + " model (" + std::to_string(params) +
         " parameters, seed " + std::to_string(model.init_seed) + ") at " + path.string() + " (model.init_arch)";
}

std::string describe_loaded_model(const LoadedModel& loaded) {
  int64_t params = 0;
  for (const auto& p : loaded.model->parameters()) params += p.numel();
  char count[32];
  if (params >= 1000000000) std::snprintf(count, sizeof(count), "%.2fB", params / 1e9);
  else if (params >= 1000000) std::snprintf(count, sizeof(count), "%.2fM", params / 1e6);
  else std::snprintf(count, sizeof(count), "%.1fK", params / 1e3);
  return "model " + fs::absolute(fs::path(loaded.folder)).lexically_normal().string() + ": " + loaded.config.model_type +
         ", " + count + " parameters, " + dtype_name(loaded.dtype) + " on " + loaded.device.str();
}

}  // namespace percetrain
