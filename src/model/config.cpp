// Reads, validates and writes config.json for the supported decoder architectures.
#include "percetrain/model/config.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "percetrain/util/error.hpp"
#include "percetrain/util/json.hpp"

namespace percetrain {
namespace {

using nlohmann::json;

const char* const kSupportedTypes = "llama, mistral, qwen2, qwen3";

int64_t get_int(const json& j, const char* key, const std::string& where, int64_t fallback,
                bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) fail(where, std::string("missing required field '") + key + "'",
                       "a Hugging Face config.json for this architecture always has it");
    return fallback;
  }
  if (!it->is_number_integer()) fail(where, std::string("field '") + key + "' must be an integer");
  return it->get<int64_t>();
}

double get_double(const json& j, const char* key, const std::string& where, double fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) fail(where, std::string("field '") + key + "' must be a number");
  return it->get<double>();
}

bool get_bool(const json& j, const char* key, const std::string& where, bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(where, std::string("field '") + key + "' must be true or false");
  return it->get<bool>();
}

// bos/eos ids may be an int or (Llama 3 instruct) a list; the first entry is the primary one.
int64_t get_token_id(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return -1;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) return (*it)[0].get<int64_t>();
  fail(where, std::string("field '") + key + "' must be an integer or a list of integers");
}

// The RoPE settings object: transformers >= 5 writes "rope_parameters" (with rope_theta inside)
// instead of "rope_scaling" and a top-level rope_theta. As transformers reads it, a non-empty
// "rope_scaling" wins over "rope_parameters". Returns its key, or nullptr when there is none.
const char* rope_settings_key(const json& j, const std::string& where) {
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_object()) fail(where, std::string("field '") + key + "' must be an object or null");
    if (!it->empty()) return key;
  }
  return nullptr;
}

RopeScaling parse_rope_scaling(const json& j, const std::string& where) {
  RopeScaling rs;
  const char* key = rope_settings_key(j, where);
  if (!key) return rs;
  const json& r = j[key];
  const std::string w = where + ": " + key;
  std::string type;
  if (r.contains("rope_type") && r["rope_type"].is_string()) type = r["rope_type"];
  else if (r.contains("type") && r["type"].is_string()) type = r["type"];
  else if (std::string(key) == "rope_parameters") type = "default";  // transformers' default too
  else fail(w, "no 'rope_type' (or 'type') given");
  if (type == "default") return rs;
  if (type != "llama3" && type != "linear")
    fail(w, "rope_type '" + type + "' is not implemented",
         "percetrain implements default, linear and llama3 RoPE");
  rs.type = type;
  rs.factor = get_double(r, "factor", w, 0.0);
  if (!(rs.factor > 0)) fail(w, "'factor' must be a positive number");
  if (type == "llama3") {
    rs.low_freq_factor = get_double(r, "low_freq_factor", w, 1.0);
    rs.high_freq_factor = get_double(r, "high_freq_factor", w, 4.0);
    rs.original_max_position_embeddings =
        get_int(r, "original_max_position_embeddings", w, 8192, true);
    if (!(rs.high_freq_factor > rs.low_freq_factor))
      fail(w, "'high_freq_factor' must be larger than 'low_freq_factor'");
  }
  return rs;
}

// Upper bounds far above every released model (Llama 3.1 405B: 126 layers, hidden 16384, MLP
// 53248, 128 heads; Gemma: 256k vocabulary), checked before anything is allocated: a damaged or
// hostile config.json (num_hidden_layers: 1000000000) is one error line, not gigabytes of layers.
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHiddenSize = 131072;
constexpr int64_t kMaxIntermediateSize = 1048576;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxHeadDim = 4096;
constexpr int64_t kMaxVocabulary = 16777216;

void check_size_limits(const ModelConfig& c, const std::string& where,
                       const std::function<std::string(const std::string& key)>& name_of) {
  const std::pair<const char*, std::pair<int64_t, int64_t>> limits[] = {
      {"num_hidden_layers", {c.num_hidden_layers, kMaxLayers}},
      {"hidden_size", {c.hidden_size, kMaxHiddenSize}},
      {"intermediate_size", {c.intermediate_size, kMaxIntermediateSize}},
      {"num_attention_heads", {c.num_attention_heads, kMaxHeads}},
      {"num_key_value_heads", {c.num_key_value_heads, kMaxHeads}},
      {"vocab_size", {c.vocab_size, kMaxVocabulary}}};
  for (const auto& [key, value_limit] : limits)
    if (value_limit.first > value_limit.second)
      fail(where, name_of(key) + " is " + std::to_string(value_limit.first) + ", more than percetrain's limit of " +
                      std::to_string(value_limit.second),
           "far above every released model");
}

// Bytes of memory this process may still take: MemAvailable plus free swap (Linux), else all of
// physical memory; 0 when unknown.
double available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kib = 0, total = 0;
  bool found = false;
  while (meminfo >> key >> kib) {
    if (key == "MemAvailable:" || key == "SwapFree:") {
      total += kib * 1024.0;
      found = true;
    }
    meminfo.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  if (found) return total;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
}

std::string gigabytes(double bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f GB", bytes / 1e9);
  return text;
}

}  // namespace

ModelConfig parse_model_config(const std::string& json_text, const std::string& where) {
  const json j = parse_json(json_text, where);
  if (!j.is_object()) fail(where, "config.json must hold a JSON object");

  ModelConfig c;
  c.raw_json = json_text;
  auto mt = j.find("model_type");
  if (mt == j.end() || !mt->is_string())
    fail(where, "missing 'model_type'", std::string("supported: ") + kSupportedTypes);
  c.model_type = mt->get<std::string>();
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2" &&
      c.model_type != "qwen3")
    fail(where, "model_type '" + c.model_type + "' is not supported",
         std::string("supported: ") + kSupportedTypes);

  c.vocab_size = get_int(j, "vocab_size", where, 0, true);
  c.hidden_size = get_int(j, "hidden_size", where, 0, true);
  c.intermediate_size = get_int(j, "intermediate_size", where, 0, true);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", where, 0, true);
  c.num_attention_heads = get_int(j, "num_attention_heads", where, 0, true);
  c.num_key_value_heads = get_int(j, "num_key_value_heads", where, c.num_attention_heads, false);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", where, 2048, false);
  for (auto [name, value] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size},
                             {"hidden_size", c.hidden_size},
                             {"intermediate_size", c.intermediate_size},
                             {"num_hidden_layers", c.num_hidden_layers},
                             {"num_attention_heads", c.num_attention_heads},
                             {"num_key_value_heads", c.num_key_value_heads}})
    if (value <= 0) fail(where, std::string("field '") + name + "' must be positive");
  check_size_limits(c, where, [](const std::string& key) { return "'" + key + "'"; });
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail(where, "num_attention_heads (" + std::to_string(c.num_attention_heads) +
                    ") is not a multiple of num_key_value_heads (" +
                    std::to_string(c.num_key_value_heads) + ")");
  c.head_dim = get_int(j, "head_dim", where, 0, false);
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_attention_heads != 0)
      fail(where, "hidden_size is not a multiple of num_attention_heads and no head_dim is given");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) fail(where, "head_dim must be positive and even");
  if (c.head_dim > kMaxHeadDim)
    fail(where, "'head_dim' is " + std::to_string(c.head_dim) + ", more than percetrain's limit of " +
                    std::to_string(kMaxHeadDim),
         "released models use 64 to 256");

  c.rms_norm_eps = get_double(j, "rms_norm_eps", where, 1e-6);
  c.rope_theta = get_double(j, "rope_theta", where, 10000.0);
  // A rope_theta inside the RoPE settings takes precedence, as in transformers.
  if (const char* key = rope_settings_key(j, where))
    c.rope_theta = get_double(j[key], "rope_theta", where + ": " + key, c.rope_theta);
  // Both enter a square root or a power: a negative value makes every log-prob NaN.
  if (!(c.rms_norm_eps > 0)) fail(where, "'rms_norm_eps' must be positive, not " + std::to_string(c.rms_norm_eps));
  if (!(c.rope_theta > 0)) fail(where, "'rope_theta' must be positive, not " + std::to_string(c.rope_theta));
  c.rope_scaling = parse_rope_scaling(j, where);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", where, false);
  c.bos_token_id = get_token_id(j, "bos_token_id", where);
  c.eos_token_id = get_token_id(j, "eos_token_id", where);
  if (j.contains("torch_dtype") && j["torch_dtype"].is_string()) c.torch_dtype = j["torch_dtype"];
  else if (j.contains("dtype") && j["dtype"].is_string()) c.torch_dtype = j["dtype"];

  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    fail(where, "hidden_act " + j["hidden_act"].dump() + " is not implemented",
         "percetrain implements the SwiGLU MLP with silu");
  if (get_double(j, "attention_dropout", where, 0.0) != 0.0)
    fail(where, "attention_dropout > 0 is not implemented", "set it to 0.0");
  if (get_bool(j, "mlp_bias", where, false))
    fail(where, "mlp_bias = true is not implemented", "no supported checkpoint uses it");

  if (c.model_type == "qwen2") {
    c.attention_bias = true;  // Qwen2 always has q/k/v biases and no o bias.
  } else {
    c.attention_bias = get_bool(j, "attention_bias", where, false);
  }
  c.qk_norm = c.model_type == "qwen3";

  if (c.model_type == "mistral") {
    c.sliding_window = get_int(j, "sliding_window", where, 0, false);
    if (c.sliding_window < 0) fail(where, "sliding_window must be positive or null");
  } else if (c.model_type == "qwen2" || c.model_type == "qwen3") {
    if (get_bool(j, "use_sliding_window", where, false))
      fail(where, "use_sliding_window = true is not implemented",
           "the released Qwen2/Qwen3 checkpoints set it to false");
  }
  return c;
}

ModelConfig load_model_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open the model config", "is this a Hugging Face model folder?");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_model_config(text.str(), path);
}

std::string model_config_to_json(const ModelConfig& c) {
  json j = c.raw_json.empty() ? json::object() : json::parse(c.raw_json);
  static const std::map<std::string, std::string> architecture = {
      {"llama", "LlamaForCausalLM"},
      {"mistral", "MistralForCausalLM"},
      {"qwen2", "Qwen2ForCausalLM"},
      {"qwen3", "Qwen3ForCausalLM"}};
  j["architectures"] = json::array({architecture.at(c.model_type)});
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.type == "default") {
    j["rope_scaling"] = nullptr;
  } else if (!j.contains("rope_scaling") || !j["rope_scaling"].is_object()) {
    json r = {{"rope_type", c.rope_scaling.type}, {"factor", c.rope_scaling.factor}};
    if (c.rope_scaling.type == "llama3") {
      r["low_freq_factor"] = c.rope_scaling.low_freq_factor;
      r["high_freq_factor"] = c.rope_scaling.high_freq_factor;
      r["original_max_position_embeddings"] = c.rope_scaling.original_max_position_embeddings;
    }
    j["rope_scaling"] = r;
  }
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hidden_act"] = "silu";
  if (c.model_type != "qwen2") j["attention_bias"] = c.attention_bias;
  if (c.model_type == "mistral")
    j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json(nullptr);
  if (c.model_type == "qwen2" || c.model_type == "qwen3") j["use_sliding_window"] = false;
  if (c.bos_token_id >= 0 && !j.contains("bos_token_id")) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_id >= 0 && !j.contains("eos_token_id")) j["eos_token_id"] = c.eos_token_id;
  j["torch_dtype"] = c.torch_dtype;
  if (!j.contains("transformers_version")) j["transformers_version"] = "4.51.0";
  return j.dump(2) + "\n";
}

ModelConfig preset_model_config(const std::string& arch, const std::string& preset,
                                int64_t vocab_size, const ModelShapeOverrides& overrides) {
  if (arch != "llama" && arch != "mistral" && arch != "qwen2" && arch != "qwen3")
    fail("--arch", "unknown architecture '" + arch + "'", std::string("use one of ") + kSupportedTypes);
  ModelConfig c;
  c.model_type = arch;
  c.vocab_size = vocab_size;
  if (preset == "tiny") {
    c.hidden_size = 64;
    c.intermediate_size = 176;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
  } else if (preset == "small") {
    c.hidden_size = 256;
    c.intermediate_size = 704;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 4;
  } else if (preset == "medium") {  // benchmarks: big enough for matmuls to dominate
    c.hidden_size = 512;
    c.intermediate_size = 1408;
    c.num_hidden_layers = 6;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 4;
  } else {
    fail("--preset", "unknown preset '" + preset + "'", "use tiny, small or medium");
  }
  const std::pair<const char*, std::pair<const std::optional<int64_t>*, int64_t*>> fields[] = {
      {"--hidden-size", {&overrides.hidden_size, &c.hidden_size}},
      {"--layers", {&overrides.num_hidden_layers, &c.num_hidden_layers}},
      {"--heads", {&overrides.num_attention_heads, &c.num_attention_heads}},
      {"--kv-heads", {&overrides.num_key_value_heads, &c.num_key_value_heads}},
      {"--intermediate-size", {&overrides.intermediate_size, &c.intermediate_size}},
      {"--head-dim", {&overrides.head_dim, nullptr}}};
  for (const auto& [option, field] : fields) {
    if (!*field.first) continue;
    const int64_t value = **field.first;
    if (value <= 0) fail(option, "must be a positive integer, got " + std::to_string(value));
    if (field.second) *field.second = value;
  }
  check_size_limits(c, "init-model", [](const std::string& key) {
    return key == "num_hidden_layers"     ? std::string("--layers")
           : key == "hidden_size"         ? std::string("--hidden-size")
           : key == "intermediate_size"   ? std::string("--intermediate-size")
           : key == "num_attention_heads" ? std::string("--heads")
           : key == "num_key_value_heads" ? std::string("--kv-heads")
                                          : std::string("the tokenizer's vocabulary");
  });
  // A preset's kv-head count can exceed a smaller --heads: then name both options.
  if (c.hidden_size % c.num_attention_heads != 0)
    fail("--hidden-size", "hidden size " + std::to_string(c.hidden_size) + " is not a multiple of the " +
                              std::to_string(c.num_attention_heads) + " attention heads",
         "choose --hidden-size and --heads so that hidden / heads is a whole number");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail("--kv-heads", std::to_string(c.num_attention_heads) + " attention heads are not a multiple of " +
                           std::to_string(c.num_key_value_heads) + " key/value heads",
         "grouped-query attention shares each key/value head among heads / kv-heads query heads; set --kv-heads "
         "to a divisor of --heads");
  // Qwen3's head_dim is independent of hidden/heads; keep the presets exercising that.
  c.head_dim = overrides.head_dim ? *overrides.head_dim
               : arch == "qwen3"  ? 2 * c.hidden_size / c.num_attention_heads
                                  : c.hidden_size / c.num_attention_heads;
  if (c.head_dim > kMaxHeadDim)
    fail("--head-dim", "is " + std::to_string(c.head_dim) + ", more than percetrain's limit of " +
                           std::to_string(kMaxHeadDim), "released models use 64 to 256");
  if (c.head_dim % 2 != 0)
    fail(overrides.head_dim ? "--head-dim" : "--hidden-size",
         "head dimension " + std::to_string(c.head_dim) + " is odd", "rotary embeddings rotate pairs: make it even");
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = arch == "qwen3" || arch == "qwen2" ? 1000000.0 : 10000.0;
  c.tie_word_embeddings = arch == "qwen2" || arch == "qwen3";
  c.attention_bias = arch == "qwen2";
  c.qk_norm = arch == "qwen3";
  c.sliding_window = 0;
  c.torch_dtype = "float32";
  return c;
}

double model_parameter_count(const ModelConfig& c) {
  const double H = static_cast<double>(c.hidden_size), V = static_cast<double>(c.vocab_size);
  const double q = static_cast<double>(c.num_attention_heads * c.head_dim);
  const double kv = static_cast<double>(c.num_key_value_heads * c.head_dim);
  const double I = static_cast<double>(c.intermediate_size);
  double layer = H * q + 2 * H * kv + q * H  // q, k, v, o projections
                 + 3 * H * I                 // gate, up, down
                 + 2 * H;                    // the two RMSNorms
  if (c.attention_bias) layer += q + 2 * kv + (c.model_type == "qwen2" ? 0 : H);
  if (c.qk_norm) layer += 2 * static_cast<double>(c.head_dim);
  return V * H * (c.tie_word_embeddings ? 1 : 2) + static_cast<double>(c.num_hidden_layers) * layer + H;
}

void check_model_fits_in_memory(const ModelConfig& c, const std::string& where,
                                const std::function<std::string(const std::string& key)>& name_of) {
  const double bytes = 4 * model_parameter_count(c);  // built in float32 before any conversion
  const double available = available_memory_bytes();
  if (available <= 0 || bytes <= available) return;
  // The size furthest above a large released model's (Llama 3 70B) is the one to name.
  struct Size {
    const char* key;
    int64_t value;
    double typical;
  };
  const Size sizes[] = {{"num_hidden_layers", c.num_hidden_layers, 80},
                        {"hidden_size", c.hidden_size, 8192},
                        {"intermediate_size", c.intermediate_size, 28672},
                        {"vocab_size", c.vocab_size, 128256},
                        {"num_attention_heads", c.num_attention_heads, 64}};
  const Size* worst = &sizes[0];
  for (const auto& size : sizes)
    if (size.value / size.typical > worst->value / worst->typical) worst = &size;
  char count[32];
  std::snprintf(count, sizeof(count), "%.3g", model_parameter_count(c));
  fail(where, name_of(worst->key) + " " + std::to_string(worst->value) + " makes a model of " + count +
                  " parameters (" + gigabytes(bytes) + " in float32), more than the " + gigabytes(available) +
                  " of memory available",
       "choose smaller sizes");
}

}  // namespace percetrain
