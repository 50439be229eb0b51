// The "lora" section of a job config and the projection names LoRA adapters may target; kept
// free of LibTorch so that config/ can include it (model/lora.hpp has the adapters themselves).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "percetrain/util/enum_names.hpp"
#include "percetrain/util/error.hpp"

namespace percetrain {

// Low-rank adapters on the Hugging Face-named projections (PEFT's LoraConfig): y = W x (+ b) +
// scaling * B A dropout(x), scaling = alpha / rank (alpha / sqrt(rank) with use_rslora). Rank 0,
// the default (and what an absent section gives), fine-tunes every weight instead.
struct LoraSection {
  int64_t rank = 0;      // r; 0 = no adapters
  double alpha = 16.0;   // lora_alpha
  double dropout = 0.0;  // on the adapter's input only, in training only
  // Projection names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj) or
  // "all-linear" for all seven; lm_head and the embeddings are never adapted. PEFT's default.
  std::vector<std::string> target_modules = {"q_proj", "v_proj"};
  bool use_rslora = false;
  bool per_user = false;  // one adapter per user instead of one for the whole data set
  // `train`: a PEFT adapter folder to continue training instead of a fresh initialisation (its
  // adapter_config.json gives rank, alpha, dropout and targets; `train --adapter DIR`).
  std::string init_adapter;

  bool enabled() const { return rank > 0; }
  // Whether `train` trains adapters (a rank, or an adapter to continue) rather than every weight.
  bool trains() const { return rank > 0 || !init_adapter.empty(); }
};

// PEFT's shorthand for every linear layer except the output embedding.
inline constexpr const char* kAllLinear = "all-linear";

// The projections of a decoder layer that can carry an adapter, in the order of a layer's
// forward (and of lora_parameters): attention, then MLP.
inline const std::vector<std::string>& lora_module_names() {
  static const std::vector<std::string> names = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return names;
}

// target_modules with "all-linear" expanded, duplicates dropped, in lora_module_names() order.
// An unknown name is an error at `where`.
inline std::vector<std::string> expand_target_modules(const std::vector<std::string>& targets,
                                                      const std::string& where) {
  const auto& known = lora_module_names();
  std::vector<bool> wanted(known.size(), false);
  for (const auto& name : targets) {
    if (name == kAllLinear) {
      std::fill(wanted.begin(), wanted.end(), true);
      continue;
    }
    const auto it = std::find(known.begin(), known.end(), name);
    if (it == known.end())
      fail(where, "'" + name + "' is not a projection LoRA can adapt",
           "use " + join_choices(known) + ", or all-linear for all of them");
    wanted[it - known.begin()] = true;
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < known.size(); ++i)
    if (wanted[i]) out.push_back(known[i]);
  if (out.empty()) fail(where, "names no module", "e.g. [\"q_proj\", \"v_proj\"] or [\"all-linear\"]");
  return out;
}

// vLLM serves a LoRA adapter whose rank is at most its --max-lora-rank (default 16), and that
// setting must be one of these values. The ask, kept: a rank outside the list gets a
// warning (not an error: the adapter is valid PEFT) that says which --max-lora-rank serves it,
// and whether vLLM's default does; above the largest value vLLM cannot serve it at all. Returns
// the one warning line for `rank`, or "" for a rank in the list.
inline std::string vllm_rank_warning(int64_t rank) {
  static const std::vector<int64_t> values = {1, 8, 16, 32, 64, 128, 256, 320, 512};
  constexpr int64_t kVllmDefault = 16;
  if (std::find(values.begin(), values.end(), rank) != values.end()) return "";
  std::string list;
  for (const int64_t r : values) list += (list.empty() ? "" : ", ") + std::to_string(r);
  const auto next = std::upper_bound(values.begin(), values.end(), rank);
  const std::string head = "warning: LoRA rank " + std::to_string(rank) + " is not one of vLLM's --max-lora-rank values (" +
                           list + "); ";
  if (next == values.end()) return head + "vLLM cannot serve this adapter";
  return head + "vLLM serves it with --max-lora-rank " + std::to_string(*next) + " or more" +
         (*next <= kVllmDefault ? " (its default, 16, does)" : " (its default, 16, is too small)");
}

}  // namespace percetrain
