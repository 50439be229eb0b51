// LoRA runs: the adapters on the frozen base, their checkpoint files, and per-user adapter runs.
#include "percetrain/train/adapters.hpp"

#include <torch/torch.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "percetrain/model/hf_folder.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/objective/objective.hpp"
#include "percetrain/pass/batching.hpp"
#include "percetrain/train/checkpoint.hpp"
#include "percetrain/train/fused_adamw.hpp"
#include "percetrain/train/master_weights.hpp"
#include "percetrain/train/metrics_log.hpp"
#include "percetrain/train/per_user.hpp"
#include "percetrain/train/run_dir.hpp"
#include "percetrain/train/step.hpp"
#include "percetrain/util/checksum.hpp"
#include "percetrain/util/device.hpp"
#include "percetrain/util/error.hpp"
#include "percetrain/util/file.hpp"
#include "percetrain/util/interrupt.hpp"
#include "percetrain/util/json.hpp"
#include "percetrain/util/text.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace percetrain {
namespace {

// The settings of a loaded adapter against the lora section that asked for it.
void check_settings_agree(const LoraSection& wanted, const LoraSection& loaded, const JobConfig& config) {
  const std::string where = config.file + ": lora";
  const std::string file = config.lora.init_adapter + "/adapter_config.json";
  const std::string hint = "leave lora.rank at 0 to take the adapter's own settings";
  if (wanted.rank != loaded.rank)
    fail(where + ".rank", std::to_string(wanted.rank) + " differs from r = " + std::to_string(loaded.rank) + " in " + file,
         hint);
  if (wanted.alpha != loaded.alpha)
    fail(where + ".alpha", std::to_string(wanted.alpha) + " differs from lora_alpha = " + std::to_string(loaded.alpha) +
                               " in " + file,
         hint);
  if (wanted.use_rslora != loaded.use_rslora) fail(where + ".use_rslora", "differs from use_rslora in " + file, hint);
  const auto targets = expand_target_modules(wanted.target_modules, where + ".target_modules");
  if (targets != loaded.target_modules)
    fail(where + ".target_modules", "[" + join(targets) + "] differs from [" + join(loaded.target_modules) + "] in " + file,
         hint);
}

}  // namespace

std::string describe_adapters(CausalLMImpl& model, const std::string& origin) {
  const LoraSection s = lora_settings(model);
  int64_t base = 0, trainable = 0;
  for (const auto& p : model.parameters()) base += p.numel();
  for (const auto& [name, t] : lora_parameters(model)) trainable += t.numel();
  char text[512];
  std::snprintf(text, sizeof(text),
                "LoRA adapters (%s): r %lld, alpha %g%s, dropout %g on %s; %lld trainable parameters, %.3f%% of the "
                "base's %lld (frozen)",
                origin.c_str(), (long long)s.rank, s.alpha, s.use_rslora ? " (rsLoRA)" : "", s.dropout,
                join(s.target_modules).c_str(), (long long)trainable,
                100.0 * static_cast<double>(trainable) / static_cast<double>(std::max<int64_t>(1, base)),
                (long long)base);
  return text;
}

std::string attach_run_adapters(CausalLMImpl& model, const JobConfig& config, const std::string& resume_from) {
  const LoraSection& lora = config.lora;
  const uint64_t seed = config.train.seed;
  if (!resume_from.empty()) {
    // Dropout masks are a function of the step and the samples (set_lora_dropout_rows): nothing
    // to restore. A lora_dropout.pt of an older checkpoint (its generator) is not read.
    load_lora_adapter(model, resume_from, seed + 1);
    return describe_adapters(model, "resumed from " + resume_from);
  }
  if (!lora.init_adapter.empty()) {
    verify_recorded_adapter(lora.init_adapter);
    const LoraSection loaded = load_lora_adapter(model, lora.init_adapter, seed + 1);
    if (lora.enabled()) {
      try {
        check_settings_agree(lora, loaded, config);
      } catch (...) {
        detach_lora(model);
        throw;
      }
    }
    return describe_adapters(model, "continuing " + lora.init_adapter);
  }
  attach_lora(model, lora, seed);
  return describe_adapters(model, "fresh, seed " + std::to_string(seed));
}

std::vector<std::string> write_adapter_checkpoint_files(CausalLMImpl& model, const std::string& dir,
                                                        const std::string& base) {
  write_lora_adapter(model, dir, base);
  return {"adapter_config.json", "adapter_model.safetensors"};
}

std::string user_folder_problem(const std::string& user) {
  if (user.empty()) return "it is empty";
  if (user.size() > 200) return "it is longer than 200 bytes";
  if (user[0] == '.') return "it starts with a dot";
  for (unsigned char c : user) {
    if (c < 0x20 || c == 0x7f) return "it contains a control character";
    if (!(std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '@' || c == '+' || c == '=' || c >= 0x80))
      return std::string("it contains '") + static_cast<char>(c) + "'";
  }
  return "";
}

void verify_recorded_adapter(const std::string& dir) {
  const fs::path folder = fs::absolute(fs::path(dir)).lexically_normal();
  const fs::path adapter = folder.filename().empty() ? folder.parent_path() : folder;
  std::error_code ec;
  std::map<std::string, std::string> files;
  std::string record;
  if (fs::exists(adapter / "trainer_state.json", ec)) {
    record = (adapter / "trainer_state.json").string();
    files = Checkpointer::read_state(adapter.string()).files;
  } else if (const fs::path users = adapter.parent_path().parent_path() / kPerUserStateFile;
             adapter.parent_path().filename() == "adapters" && fs::exists(users, ec)) {
    const json state = read_json_file(users.string());
    const std::string user = adapter.filename().string();
    if (state.is_object() && state.value("format", "") == kPerUserStateFormat && state.contains("users") &&
        state["users"].is_object() && state["users"].contains(user) && state["users"][user].is_object()) {
      record = users.string();
      try {
        files = state["users"][user].value("files_sha256", std::map<std::string, std::string>{});
      } catch (const json::exception& e) {
        fail(record, "is damaged: " + std::string(e.what()), "train the run's adapters again");
      }
    }
  }
  std::string bad_file;
  if (const std::string problem = checksum_problem(adapter.string(), files, &bad_file); !problem.empty())
    fail(bad_file, (problem.find("is missing") != std::string::npos ? "is missing; " : "does not match ") +
                       std::string("the checksum recorded in ") + record + ": the adapter is damaged",
         "train it again (train --resume retrains damaged per-user adapters), or restore the file");
}

}  // namespace percetrain
