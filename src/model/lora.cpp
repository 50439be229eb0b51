// LoRA adapters on the Hugging Face-named projections, PEFT's file layout, merging.
#include "percetrain/model/lora.hpp"

#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "model/adapter_config.hpp"
#include "percetrain/io/safetensors.hpp"
#include "percetrain/model/hf_folder.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"
#include "percetrain/util/text.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace percetrain {
namespace {

// PEFT's PeftModelForCausalLM -> LoraModel -> the transformers model: "base_model.model." before
// the Hugging Face module path.
constexpr const char* kPeftPrefix = "base_model.model.";

// What every adapter of one model shares.
struct LoraState {
  LoraSection settings;  // target_modules expanded
  double scaling = 1.0;
  uint64_t dropout_seed = 0;
  int64_t dropout_step = 0;            // set_lora_dropout_rows: the optimizer step
  std::vector<int64_t> dropout_rows;   // ... and the sample of each batch row; empty: rows 0..B-1
  bool merged = false;
};

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The keep mask of LoRA dropout for x: [B, ...] -> [B, ...] in x's dtype, 0 or 1 / (1 - p).
// Element e of row b (row-major within the row: token t, feature j is t * in + j, whatever the
// padded length) is kept when 16-bit lane e % 4 of SplitMix64's (e / 4)-th output from the row's
// key, read as a uniform in [0, 1), is below 1 - p (so p counts in steps of 2^-16); the key hashes
// (seed, step, sample of row b, site). So a sample's mask depends on neither its micro-batch, its
// row, the rank nor the padding, and a recomputation (gradient checkpointing, a resumed run) gets
// it again with no generator state. The arithmetic wraps in int64 (two's complement) on every
// device, shifts are made logical, and the lanes are read little-endian (every device we run on).
torch::Tensor dropout_keep(const torch::Tensor& x, const LoraState& state, int64_t site) {
  const double p = state.settings.dropout;
  const int64_t rows = x.size(0), per_row = rows > 0 ? x.numel() / rows : 0;
  if (!state.dropout_rows.empty() && static_cast<int64_t>(state.dropout_rows.size()) != rows)
    fail("LoRA dropout", "the forward has " + std::to_string(rows) + " rows and set_lora_dropout_rows named " +
                             std::to_string(state.dropout_rows.size()) + " samples",
         "this is a bug in the caller: set the rows of each micro-batch before its forward");
  std::vector<int64_t> keys(static_cast<size_t>(rows));
  const uint64_t step_key = splitmix64(splitmix64(state.dropout_seed) ^ static_cast<uint64_t>(state.dropout_step));
  for (int64_t b = 0; b < rows; ++b) {
    const int64_t sample = state.dropout_rows.empty() ? b : state.dropout_rows[static_cast<size_t>(b)];
    keys[static_cast<size_t>(b)] = static_cast<int64_t>(
        splitmix64(splitmix64(step_key ^ static_cast<uint64_t>(sample)) ^ static_cast<uint64_t>(site)));
  }
  const auto options = torch::TensorOptions().dtype(torch::kInt64).device(x.device());
  auto key = torch::tensor(keys, torch::kInt64).to(x.device()).view({rows, 1});
  // SplitMix64: state_w = key + (w + 1) * gamma, then its finaliser; four lanes per word.
  const int64_t words = (per_row + 3) / 4;
  auto z = torch::arange(1, words + 1, options).mul_(static_cast<int64_t>(0x9E3779B97F4A7C15ull)).add(key);
  auto logical_shift = [](const torch::Tensor& v, int64_t s) {
    return v.__rshift__(s).bitwise_and_(static_cast<int64_t>((uint64_t{1} << (64 - s)) - 1));
  };
  z.bitwise_xor_(logical_shift(z, 30)).mul_(static_cast<int64_t>(0xBF58476D1CE4E5B9ull));
  z.bitwise_xor_(logical_shift(z, 27)).mul_(static_cast<int64_t>(0x94D049BB133111EBull));
  z.bitwise_xor_(logical_shift(z, 31));
  // Signed 16-bit lanes: uniform over [-2^15, 2^15).
  const int64_t threshold = std::llround((1.0 - p) * 65536.0) - 32768;
  if (threshold > 32767) return torch::full_like(x, 1.0 / (1.0 - p));  // p < 2^-17 drops nothing
  auto lanes = z.view(torch::kInt16).slice(1, 0, per_row);
  return lanes.lt(threshold).to(x.scalar_type()).div_(1.0 - p).view(x.sizes());
}

class LoraBranch : public ProjectionAdapter {
 public:
  LoraBranch(torch::Tensor a, torch::Tensor b, std::shared_ptr<LoraState> state, int64_t site)
      : A(std::move(a)), B(std::move(b)), state_(std::move(state)), site_(site) {}

  // x: [B, ..., in], base: [B, ..., out] -> [B, ..., out]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& base, bool training) override {
    if (state_->merged) return base;
    auto h = x.to(A.scalar_type());
    // Inference mode (generation, scoring, validation, the counterfactual pass) never drops.
    const double p = state_->settings.dropout;
    if (training && p > 0 && !c10::InferenceMode::is_enabled()) h = h * dropout_keep(h, *state_, site_);
    // The scaling multiplies the [..., r] intermediate rather than the [..., out] result: the same
    // product, r / out of the work.
    auto delta = torch::linear(torch::linear(h, A) * state_->scaling, B);
    return (base + delta).to(base.scalar_type());
  }

  LoraState& state() { return *state_; }

  torch::Tensor A, B;  // [r, in], [out, r]

 private:
  std::shared_ptr<LoraState> state_;
  int64_t site_;  // index in sites(): which projection of which layer, for the dropout key
};

// One projection of one layer, by its Hugging Face path (model.layers.3.mlp.down_proj).
struct Site {
  std::string path;
  std::string name;  // the last component: q_proj, ..., down_proj
  int64_t layer = 0;
  ProjectionImpl* projection = nullptr;
  LoraBranch* branch() const { return static_cast<LoraBranch*>(projection->adapter.get()); }
};

// Every adaptable projection, layer by layer (q, k, v, o, gate, up, down: the order seeded
// adapters are drawn in). Each module is listed beside its Hugging Face name, so a name always
// reaches its own projection; lora_module_names() must name exactly these.
std::vector<Site> sites(CausalLMImpl& model) {
  struct Named {
    const char* block;
    const char* name;
    Projection* projection;
  };
  std::vector<Site> out;
  const auto& layers = *model.model->layers;
  for (size_t i = 0; i < layers.size(); ++i) {
    auto* layer = layers[i]->as<DecoderLayer>();
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    const Named projections[] = {
        {"self_attn", "q_proj", &layer->self_attn->q_proj}, {"self_attn", "k_proj", &layer->self_attn->k_proj},
        {"self_attn", "v_proj", &layer->self_attn->v_proj}, {"self_attn", "o_proj", &layer->self_attn->o_proj},
        {"mlp", "gate_proj", &layer->mlp->gate_proj},       {"mlp", "up_proj", &layer->mlp->up_proj},
        {"mlp", "down_proj", &layer->mlp->down_proj}};
    for (const Named& p : projections)
      out.push_back({prefix + p.block + "." + p.name, p.name, static_cast<int64_t>(i), p.projection->get()});
  }
  return out;
}

std::vector<Site> adapted_sites(CausalLMImpl& model) {
  std::vector<Site> out;
  for (auto& site : sites(model))
    if (site.projection->adapter) out.push_back(site);
  return out;
}

LoraState& state_of(CausalLMImpl& model, const char* what) {
  for (auto& site : sites(model))
    if (site.projection->adapter) return site.branch()->state();
  fail(what, "the model has no LoRA adapters");
}

// float32 adapters, float64 on a float64 base (tests against float64 references).
c10::ScalarType adapter_dtype(CausalLMImpl& model) {
  return model.model->embed_tokens->weight.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat32;
}

double scaling_of(const LoraSection& lora) {
  const double r = static_cast<double>(lora.rank);
  return lora.use_rslora ? lora.alpha / std::sqrt(r) : lora.alpha / r;
}

std::shared_ptr<LoraState> make_state(LoraSection settings, uint64_t dropout_seed) {
  auto state = std::make_shared<LoraState>();
  state->scaling = scaling_of(settings);
  state->settings = std::move(settings);
  state->dropout_seed = dropout_seed;
  return state;
}

// Installs one branch per entry of `tensors` (site index -> A, B) and freezes the base.
void install(CausalLMImpl& model, const std::shared_ptr<LoraState>& state,
             std::vector<std::pair<size_t, std::pair<torch::Tensor, torch::Tensor>>> tensors) {
  auto all = sites(model);
  for (auto& p : model.parameters()) p.requires_grad_(false);
  for (auto& [index, ab] : tensors) {
    ab.first.requires_grad_(true);
    ab.second.requires_grad_(true);
    all.at(index).projection->adapter =
        std::make_shared<LoraBranch>(ab.first, ab.second, state, static_cast<int64_t>(index));
  }
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
void attach_lora(CausalLMImpl& model, const LoraSection& lora, uint64_t seed) {
  if (!lora.enabled()) fail("lora.rank", "is 0: there is no adapter to attach", "set lora.rank, e.g. 8");
  if (has_lora(model)) fail("lora", "the model has LoRA adapters already", "detach_lora first");
  LoraSection settings = lora;
  settings.target_modules = expand_target_modules(lora.target_modules, "lora.target_modules");
  const auto dtype = adapter_dtype(model);
  const auto device = model.model->embed_tokens->weight.device();
  auto state = make_state(settings, seed + 1);

  // Drawn on the CPU in site order, so that a seed gives the same adapters on every device.
  auto generator = at::detail::createCPUGenerator(seed);
  std::vector<std::pair<size_t, std::pair<torch::Tensor, torch::Tensor>>> tensors;
  const auto all = sites(model);
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& targets = settings.target_modules;
    if (std::find(targets.begin(), targets.end(), all[i].name) == targets.end()) continue;
    const auto& weight = all[i].projection->weight;  // [out, in]
    const int64_t out = weight.size(0), in = weight.size(1);
    // kaiming_uniform_(a = sqrt(5)): bound = sqrt(6 / ((1 + a^2) * fan_in)) = 1 / sqrt(in).
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    auto a = torch::empty({lora.rank, in}, torch::kFloat64).uniform_(-bound, bound, generator).to(device, dtype);
    auto b = torch::zeros({out, lora.rank}, torch::TensorOptions().dtype(dtype).device(device));
    tensors.push_back({i, {a, b}});
  }
  install(model, state, std::move(tensors));
}

bool has_lora(CausalLMImpl& model) {
  for (auto& site : sites(model))
    if (site.projection->adapter) return true;
  return false;
}

LoraSection lora_settings(CausalLMImpl& model) { return state_of(model, "lora_settings").settings; }

LoraTensors lora_parameters(CausalLMImpl& model) {
  LoraTensors out;
  for (auto& site : adapted_sites(model)) {
    const std::string name = kPeftPrefix + site.path;
    out.emplace_back(name + ".lora_A.weight", site.branch()->A);
    out.emplace_back(name + ".lora_B.weight", site.branch()->B);
  }
  return out;
}

int64_t lora_parameter_count(const ModelConfig& c, const LoraSection& lora) {
  const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  const std::map<std::string, std::pair<int64_t, int64_t>> in_out = {
      {"q_proj", {c.hidden_size, q}},         {"k_proj", {c.hidden_size, kv}},
      {"v_proj", {c.hidden_size, kv}},        {"o_proj", {q, c.hidden_size}},
      {"gate_proj", {c.hidden_size, c.intermediate_size}}, {"up_proj", {c.hidden_size, c.intermediate_size}},
      {"down_proj", {c.intermediate_size, c.hidden_size}}};
  int64_t per_layer = 0;
  for (const auto& name : expand_target_modules(lora.target_modules, "lora.target_modules")) {
    const auto& [in, out] = in_out.at(name);
    per_layer += lora.rank * (in + out);
  }
  return per_layer * c.num_hidden_layers;
}

int64_t trainable_parameter_count(CausalLMImpl& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters())
    if (p.requires_grad()) n += p.numel();
  for (const auto& [name, t] : lora_parameters(model))
    if (t.requires_grad()) n += t.numel();
  return n;
}

namespace {

// W += sign * scaling * B A, computed in the adapter's precision and rounded once.
void apply_delta(CausalLMImpl& model, double sign) {
  torch::NoGradGuard no_grad;
  for (auto& site : adapted_sites(model)) {
    LoraBranch& branch = *site.branch();
    auto& weight = site.projection->weight;
    auto delta = torch::matmul(branch.B, branch.A).mul_(sign * branch.state().scaling);  // [out, in]
    weight.copy_(weight.to(delta.scalar_type()).add_(delta));
  }
}

}  // namespace

void merge_lora(CausalLMImpl& model) {
  LoraState& state = state_of(model, "merge_lora");
  if (state.merged) fail("merge_lora", "the adapters are merged already");
  apply_delta(model, 1.0);
  state.merged = true;
}

void unmerge_lora(CausalLMImpl& model) {
  LoraState& state = state_of(model, "unmerge_lora");
  if (!state.merged) fail("unmerge_lora", "the adapters are not merged");
  apply_delta(model, -1.0);
  state.merged = false;
}


void detach_lora(CausalLMImpl& model) {
  for (auto& site : sites(model)) site.projection->adapter.reset();
  for (auto& p : model.parameters()) p.requires_grad_(true);
}

void set_lora_dropout_rows(CausalLMImpl& model, int64_t step, std::vector<int64_t> samples) {
  LoraState& state = state_of(model, "set_lora_dropout_rows");
  state.dropout_step = step;
  state.dropout_rows = std::move(samples);
}

void clear_lora_dropout_rows(CausalLMImpl& model) { set_lora_dropout_rows(model, 0, {}); }

// ---------------------------------------------------------------------------------------------
// PEFT files.

void write_lora_adapter(CausalLMImpl& model, const std::string& dir, const std::string& base_model_name_or_path) {
  const LoraSection lora = lora_settings(model);
  // The keys PEFT 0.10-0.13 writes for a LoRA CAUSAL_LM adapter (json.dumps(sort_keys=True):
  // nlohmann's objects are sorted too). Keys newer PEFT added would make older PEFT refuse the file.
  json alpha = lora.alpha == std::floor(lora.alpha) && std::abs(lora.alpha) < 1e15
                   ? json(static_cast<int64_t>(lora.alpha))
                   : json(lora.alpha);
  json config = {
      {"alpha_pattern", json::object()},
      {"auto_mapping", nullptr},
      {"base_model_name_or_path", base_model_name_or_path.empty() ? json(nullptr) : json(base_model_name_or_path)},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"layer_replication", nullptr},
      {"layers_pattern", nullptr},
      {"layers_to_transform", nullptr},
      {"loftq_config", json::object()},
      {"lora_alpha", alpha},
      {"lora_dropout", lora.dropout},
      {"megatron_config", nullptr},
      {"megatron_core", "megatron.core"},
      {"modules_to_save", nullptr},
      {"peft_type", "LORA"},
      {"r", lora.rank},
      {"rank_pattern", json::object()},
      {"revision", nullptr},
      {"target_modules", lora.target_modules},
      {"task_type", "CAUSAL_LM"},
      {"use_dora", false},
      {"use_rslora", lora.use_rslora},
  };
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, t] : lora_parameters(model))
    tensors.emplace_back(name, t.detach().to(torch::kCPU, torch::kFloat32).contiguous());
  const fs::path folder(dir);
  write_safetensors((folder / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  write_file_atomic((folder / "adapter_config.json").string(), config.dump(2) + "\n", "the adapter config");
}

void save_lora_adapter(CausalLMImpl& model, const std::string& out_dir, const std::string& base_model_name_or_path) {
  lora_settings(model);  // fails before anything is written when there are no adapters
  FolderWrite how;
  how.what = "the adapter";
  how.kind = "an adapter folder";
  how.overwrite = true;  // its own two files are replaced; anything else in the folder stays
  how.ours = [](const std::string& name) {
    return name == "adapter_config.json" || name == "adapter_model.safetensors";
  };
  write_folder_whole(
      out_dir,
      [&](const std::string& staging) {
        write_lora_adapter(model, staging, base_model_name_or_path);
        return std::vector<std::string>{"adapter_config.json", "adapter_model.safetensors"};
      },
      how);
}

LoraSection load_lora_adapter(CausalLMImpl& model, const std::string& dir, uint64_t dropout_seed) {
  const fs::path folder(dir);
  if (!fs::is_directory(folder))
    fail(dir, "is not a folder", "give a PEFT adapter folder (adapter_config.json, adapter_model.safetensors)");
  if (!fs::exists(folder / "adapter_config.json"))
    fail(dir, "has no adapter_config.json", "is it a PEFT adapter folder?");
  if (has_lora(model)) fail(dir, "the model has LoRA adapters already", "detach_lora first");
  const fs::path config_file = folder / "adapter_config.json";
  AdapterConfig config =
      parse_adapter_config(read_text_file(config_file.string(), "the adapter config"), config_file.string());
  LoraSection& lora = config.lora;

  const fs::path weights = folder / "adapter_model.safetensors";
  if (!fs::exists(weights)) {
    if (fs::exists(folder / "adapter_model.bin"))
      fail((folder / "adapter_model.bin").string(), "PyTorch .bin adapters are not read",
           "save the adapter with save_pretrained(..., safe_serialization=True)");
    fail(dir, "has no adapter_model.safetensors");
  }
  SafetensorsFile file(weights.string());
  const std::string where = weights.string();
  const std::string base = model.config().model_type + ", " + std::to_string(model.config().num_hidden_layers) +
                           " layers, hidden size " + std::to_string(model.config().hidden_size);
  const std::string wrong_base = "is the adapter for this base model (" + base + ")?";

  const auto all = sites(model);
  std::map<std::string, size_t> by_path;
  for (size_t i = 0; i < all.size(); ++i) by_path[all[i].path] = i;
  const auto dtype = adapter_dtype(model);
  const auto device = model.model->embed_tokens->weight.device();
  std::map<size_t, std::pair<torch::Tensor, torch::Tensor>> found;  // site -> (A, B)

  for (const auto& entry : file.entries()) {
    const std::string& name = entry.name;
    if (name.rfind(kPeftPrefix, 0) != 0)
      fail(where, "tensor '" + name + "' is not named base_model.model.<module>.lora_A/lora_B.weight",
           "is this a PEFT adapter?");
    const std::string rest = name.substr(std::string(kPeftPrefix).size());
    const bool is_a = ends_with(rest, ".lora_A.weight"), is_b = ends_with(rest, ".lora_B.weight");
    if (!is_a && !is_b) {
      if (rest.find("lora_magnitude_vector") != std::string::npos)
        fail(where, "tensor '" + name + "' belongs to a DoRA adapter, which is not supported");
      if (rest.find("lora_embedding") != std::string::npos)
        fail(where, "tensor '" + name + "' adapts an embedding, which is not supported");
      if (rest.find("lora_") != std::string::npos && ends_with(rest, ".bias"))
        fail(where, "tensor '" + name + "' is a LoRA bias, which is not supported");
      fail(where, "tensor '" + name + "' is not a LoRA weight (full module copies are not supported)",
           "percetrain reads lora_A.weight and lora_B.weight tensors only");
    }
    const std::string module = rest.substr(0, rest.size() - std::string(".lora_A.weight").size());
    const auto site_it = by_path.find(module);
    if (site_it == by_path.end())
      fail(where, "tensor '" + name + "' adapts '" + module + "', which is not a projection of the base model",
           wrong_base);
    const Site& site = all[site_it->second];
    const auto& targets = lora.target_modules;
    if (config.targets_known && std::find(targets.begin(), targets.end(), site.name) == targets.end())
      fail(where, "tensor '" + name + "' adapts " + site.name + ", which target_modules does not name",
           "adapter_config.json and the tensors disagree");
    if (!config.layers.empty() && !config.layers.count(site.layer))
      fail(where, "tensor '" + name + "' is on a layer layers_to_transform does not name",
           "adapter_config.json and the tensors disagree");
    const int64_t out = site.projection->weight.size(0), in = site.projection->weight.size(1);
    const auto& shape = entry.shape;
    if (shape.size() != 2)
      fail(where, "tensor '" + name + "' is " + shape_string(shape) + ", not a matrix");
    const int64_t rank = is_a ? shape[0] : shape[1];
    if (rank != lora.rank)
      fail(where, "tensor '" + name + "' " + shape_string(shape) + " has rank " + std::to_string(rank) +
                      ", but adapter_config.json says r = " + std::to_string(lora.rank),
           "the config and the weights are from different adapters");
    const std::vector<int64_t> expected = is_a ? std::vector<int64_t>{lora.rank, in} : std::vector<int64_t>{out, lora.rank};
    if (shape != expected)
      fail(where, "tensor '" + name + "' is " + shape_string(shape) + ", but the base's " + module + " needs " +
                      shape_string(expected),
           wrong_base);
    const auto stored = scalar_type_from_safetensors(entry.dtype, where);
    if (!c10::isFloatingType(stored))
      fail(where, "tensor '" + name + "' is " + entry.dtype + ", not floating point");
    auto tensor = file.load(name, dtype);
    // NaN or infinity in an adapter only ever gives NaN log-probs (or merged weights): refused here,
    // where the tensor can be named, rather than as garbage output later.
    if (!torch::isfinite(tensor).all().item<bool>())
      fail(where, "tensor '" + name + "' holds non-finite values (NaN or infinity)",
           "the adapter is damaged or its training diverged; use another checkpoint");
    (is_a ? found[site_it->second].first : found[site_it->second].second) = tensor.to(device);
  }

  // Every adapted module has both halves; with a known target list, every targeted module (on the
  // layers_to_transform) has them.
  for (size_t i = 0; i < all.size(); ++i) {
    const auto it = found.find(i);
    const auto& targets = lora.target_modules;
    const bool targeted = config.targets_known &&
                          std::find(targets.begin(), targets.end(), all[i].name) != targets.end() &&
                          (config.layers.empty() || config.layers.count(all[i].layer));
    if (it == found.end()) {
      if (targeted)
        fail(where, "no lora_A or lora_B for " + all[i].path + ", which target_modules names",
             "the file is incomplete, or the adapter is for a base with other layers");
      continue;
    }
    if (!it->second.first.defined() || !it->second.second.defined())
      fail(where, std::string("missing ") + (it->second.first.defined() ? "lora_B" : "lora_A") + " for " + all[i].path,
           "the file is incomplete");
  }
  if (found.empty()) fail(where, "holds no LoRA tensors");
  if (!config.targets_known) {  // the modules the tensors adapt
    std::vector<std::string> names;
    for (const auto& [i, ab] : found) names.push_back(all[i].name);
    lora.target_modules = expand_target_modules(names, where);
  }

  auto state = make_state(lora, dropout_seed);
  std::vector<std::pair<size_t, std::pair<torch::Tensor, torch::Tensor>>> tensors(found.begin(), found.end());
  install(model, state, std::move(tensors));
  return lora;
}

// ---------------------------------------------------------------------------------------------
AdapterLibrary::AdapterLibrary(const std::string& dir, std::function<void(const std::string& folder)> verify)
    : dir_(dir), verify_(std::move(verify)) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    fail(dir, "is not a folder", "give the folder of per-user adapters (OUTPUT/adapters of a lora.per_user run)");
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && fs::exists(entry.path() / "adapter_config.json") && name.find('.') != 0)
      folders_[name] = entry.path().string();
  }
  if (folders_.empty())
    fail(dir, "holds no adapter folders (<user>/adapter_config.json)",
         fs::exists(fs::path(dir) / "adapter_config.json") ? "it is one adapter: use --adapter for it"
                                                          : "give OUTPUT/adapters of a lora.per_user run");
}

void AdapterLibrary::use(CausalLMImpl& model, const std::string& user) {
  const std::string wanted = has(user) ? user : "";
  if (wanted == current_ && (wanted.empty() || has_lora(model))) return;
  if (has_lora(model)) detach_lora(model);
  current_.clear();
  if (wanted.empty()) return;
  if (verify_ && !verified_.count(wanted)) {
    verify_(folders_.at(wanted));
    verified_.insert(wanted);
  }
  load_lora_adapter(model, folders_.at(wanted));
  current_ = wanted;
}

AdapterLibrary::Assignment AdapterLibrary::assign(const std::vector<std::string>& users) const {
  Assignment a;
  std::set<std::string> with, without;
  for (const auto& user : users) {
    const bool found = has(user);
    a.groups.push_back(found ? user : "");
    ++(found ? a.records_with : a.records_without);
    (found ? with : without).insert(user);
  }
  a.users_with = static_cast<int64_t>(with.size());
  a.users_without = static_cast<int64_t>(without.size());
  if (a.records_with == 0 && !users.empty())
    fail(dir_, "holds an adapter for none of the " + std::to_string(without.size()) + " users of the data (e.g. " +
                   quote_name(*without.begin()) + "; its adapters are for users like " + quote_name(folders_.begin()->first) + ")",
         "check data.user_key and that this is OUTPUT/adapters of a per-user run on these users");
  a.summary = "adapters: " + std::to_string(folders_.size()) + " in " + dir_ + "; " + std::to_string(a.records_with) +
              " records (" + std::to_string(a.users_with) + " users) use their user's, " +
              std::to_string(a.records_without) + " records (" + std::to_string(a.users_without) +
              " users) have none and run on the base model";
  return a;
}

// ---------------------------------------------------------------------------------------------
MergedAdapter merge_adapter_folder(const std::string& base_dir, const std::string& adapter_dir,
                                   const std::string& out_dir, c10::ScalarType dtype, bool overwrite) {
  refuse_outputs_onto_inputs({{out_dir, "--out", true}}, {{base_dir, "--model", true}, {adapter_dir, "--adapter", true}});
  const ModelConfig config = load_model_config((fs::path(base_dir) / "config.json").string());
  MergedAdapter result;
  if (dtype == c10::ScalarType::Undefined) {
    try {
      dtype = parse_dtype(config.torch_dtype, c10::Device(c10::kCPU), "torch_dtype");
    } catch (const Error&) {
      dtype = torch::kFloat32;
    }
  }
  result.dtype = dtype;
  // Loaded in the stored dtype: the merge computes each delta in float32 and rounds once.
  LoadedModel loaded = load_causal_lm(base_dir, c10::Device(c10::kCPU), dtype);
  result.lora = load_lora_adapter(*loaded.model, adapter_dir);
  result.modules = static_cast<int64_t>(lora_parameters(*loaded.model).size() / 2);
  merge_lora(*loaded.model);
  detach_lora(*loaded.model);
  // Finite inputs can still overflow in the stored dtype (a large scaling in float16): a model
  // with non-finite weights is never written.
  for (const auto& item : loaded.model->named_parameters())
    if (!torch::isfinite(item.value()).all().item<bool>())
      fail(out_dir, "nothing written: the merged weight '" + item.key() + "' holds non-finite values (NaN or infinity)",
           "check the base model and the adapter; merge in float32 (--dtype float32) if a half-precision type overflows");
  SaveOptions save;
  save.tokenizer_source = base_dir;
  save.model_source = base_dir;
  save.overwrite = overwrite;
  save_causal_lm(*loaded.model, out_dir, save);
  return result;
}

}  // namespace percetrain
