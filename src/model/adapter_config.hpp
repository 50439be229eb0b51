// Internal to model/: adapter_config.json -> the LoRA settings percetrain applies. Kept free of
// LibTorch so that the parser can be tested and fuzzed alone (fuzz/).
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "percetrain/model/lora_section.hpp"

namespace percetrain {

// lora_alpha beyond this is refused: the scaling alpha / r multiplies every adapter output.
inline constexpr double kMaxLoraAlpha = 1e6;
// r beyond this is refused: wider than any model's hidden size (transformers' largest are 16,384).
inline constexpr int64_t kMaxLoraRank = 65536;

struct AdapterConfig {
  LoraSection lora;
  bool targets_known = true;        // false: target_modules is a regex; the tensors decide
  std::set<int64_t> layers;         // layers_to_transform; empty: every layer
};

// Parses the text of a PEFT adapter_config.json; `file` names it in errors. Anything
// percetrain cannot apply exactly (not LORA, bias, DoRA, modules_to_save, per-module ranks,
// unknown modules, ...) is one percetrain::Error naming the key.
AdapterConfig parse_adapter_config(const std::string& json_text, const std::string& file);

}  // namespace percetrain
