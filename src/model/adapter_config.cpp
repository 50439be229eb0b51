// adapter_config.json -> the settings percetrain applies, or one error for anything it cannot.
#include "model/adapter_config.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "percetrain/util/enum_names.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain {

using nlohmann::json;

AdapterConfig parse_adapter_config(const std::string& json_text, const std::string& file) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    fail(file, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(file, "must be a JSON object");
  auto where = [&](const std::string& key) { return file + ": " + key; };
  auto present = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  auto truthy = [&](const char* key) {
    if (!present(key)) return false;
    const json& v = j[key];
    return v.is_boolean() ? v.get<bool>() : !(v.is_object() || v.is_array() || v.is_string()) || !v.empty();
  };

  if (!present("peft_type"))
    fail(where("peft_type"), "is missing", "PEFT writes it into every adapter; is this a PEFT adapter folder?");
  if (j["peft_type"] != "LORA")
    fail(where("peft_type"), j["peft_type"].dump() + " is not LORA", "percetrain reads LoRA adapters only");
  if (present("task_type") && j["task_type"] != "CAUSAL_LM")
    fail(where("task_type"), j["task_type"].dump() + " is not CAUSAL_LM", "the adapter is for another kind of model");

  AdapterConfig out;
  LoraSection& lora = out.lora;
  // Bounded before the conversion to an integer (1e300 does not fit one); no layer is that wide.
  if (!present("r") || !j["r"].is_number() || j["r"].get<double>() < 1 || j["r"].get<double>() > kMaxLoraRank ||
      j["r"].get<double>() != std::floor(j["r"].get<double>()))
    fail(where("r"), "must be a positive integer of at most " + std::to_string(kMaxLoraRank), "the adapter's rank");
  lora.rank = j["r"].get<int64_t>();
  // Bounded, not just positive: the scaling alpha / r multiplies every adapter output, and an
  // alpha like 1e308 turns them into infinity and the log-probs into NaN. Trained adapters use
  // alphas of 1 to a few hundred; 1e6 leaves ample room and still keeps the product finite.
  if (!present("lora_alpha") || !j["lora_alpha"].is_number() || !(j["lora_alpha"].get<double>() > 0) ||
      !(j["lora_alpha"].get<double>() <= kMaxLoraAlpha))
    fail(where("lora_alpha"), "must be a positive number of at most 1e6" +
                                  (present("lora_alpha") ? ", not " + j["lora_alpha"].dump() : std::string()),
         "PEFT adapters use values like 16 or 32");
  lora.alpha = j["lora_alpha"].get<double>();
  if (present("lora_dropout")) {
    if (!j["lora_dropout"].is_number() || j["lora_dropout"].get<double>() < 0 || j["lora_dropout"].get<double>() >= 1)
      fail(where("lora_dropout"), "must be a number in [0, 1)");
    lora.dropout = j["lora_dropout"].get<double>();
  }
  if (present("use_rslora")) {
    if (!j["use_rslora"].is_boolean()) fail(where("use_rslora"), "must be true or false");
    lora.use_rslora = j["use_rslora"].get<bool>();
  }

  // What changes the computation beyond W + scaling B A: refused rather than approximated.
  if (present("bias") && j["bias"] != "none")
    fail(where("bias"), j["bias"].dump() + " is not supported: percetrain's adapters have no bias terms",
         "train the adapter with bias=\"none\"");
  if (truthy("lora_bias")) fail(where("lora_bias"), "is not supported: percetrain's adapters have no bias terms");
  if (truthy("use_dora")) fail(where("use_dora"), "DoRA adapters are not supported", "train a plain LoRA adapter");
  if (truthy("modules_to_save"))
    fail(where("modules_to_save"), "full module copies (" + j["modules_to_save"].dump() + ") are not supported",
         "train without modules_to_save, or merge the adapter with PEFT");
  if (truthy("fan_in_fan_out")) fail(where("fan_in_fan_out"), "is for GPT-2's Conv1D layers, which these models lack");
  if (truthy("rank_pattern") || truthy("alpha_pattern"))
    fail(where(truthy("rank_pattern") ? "rank_pattern" : "alpha_pattern"),
         "per-module ranks and alphas are not supported", "train with one r and lora_alpha for every module");
  if (truthy("layer_replication")) fail(where("layer_replication"), "is not supported");
  if (present("init_lora_weights") && j["init_lora_weights"].is_string()) {
    const std::string init = j["init_lora_weights"].get<std::string>();
    if (init != "gaussian")
      fail(where("init_lora_weights"), "'" + init + "' changes the base weights the adapter was trained on",
           "convert the adapter to plain LoRA with PEFT first");
  }
  if (present("layers_to_transform")) {
    const json& l = j["layers_to_transform"];
    if (l.is_number_integer()) out.layers.insert(l.get<int64_t>());
    else if (l.is_array())
      for (const auto& v : l) {
        if (!v.is_number_integer()) fail(where("layers_to_transform"), "must hold layer numbers");
        out.layers.insert(v.get<int64_t>());
      }
    else fail(where("layers_to_transform"), "must be a layer number or a list of them");
  }

  // target_modules: names matched by their last component (PEFT: the key or a "."-suffix),
  // "all-linear", null (PEFT's default for these models: q_proj, v_proj) or a regex, which the
  // tensors stand in for.
  if (!present("target_modules")) {
    lora.target_modules = {"q_proj", "v_proj"};
  } else if (j["target_modules"].is_string()) {
    const std::string t = j["target_modules"].get<std::string>();
    if (t == kAllLinear) lora.target_modules = lora_module_names();
    else out.targets_known = false;
  } else if (j["target_modules"].is_array()) {
    std::vector<std::string> names;
    for (const auto& v : j["target_modules"]) {
      if (!v.is_string()) fail(where("target_modules"), "must hold module names");
      std::string name = v.get<std::string>();
      const auto dot = name.rfind('.');
      const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
      const auto& known = lora_module_names();
      if (name != kAllLinear && std::find(known.begin(), known.end(), leaf) == known.end())
        fail(where("target_modules"), "'" + name + "' is not a projection percetrain can adapt",
             "percetrain adapts " + join_choices(known));
      names.push_back(name == kAllLinear ? name : leaf);
    }
    lora.target_modules = expand_target_modules(names, where("target_modules"));
  } else {
    fail(where("target_modules"), "must be a list of module names or a string");
  }
  return out;
}

}  // namespace percetrain
