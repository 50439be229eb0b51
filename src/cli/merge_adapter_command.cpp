// merge-adapter: a base model folder plus a PEFT LoRA adapter -> one Hugging Face model folder.
#include <iostream>

#include "cli/commands.hpp"
#include "cli/job_options.hpp"
#include "percetrain/model/lora.hpp"
#include "percetrain/train/adapters.hpp"
#include "percetrain/util/device.hpp"

namespace percetrain::cli {
namespace {

Runner add_merge_adapter_command(CLI::App& app) {
  struct Options {
    std::string model, adapter, out, dtype = "auto";
    bool overwrite = false;
  };
  auto opts = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "merge-adapter",
      "Merge a PEFT LoRA adapter into its base model: writes a Hugging Face model folder with "
      "W + scaling * B A (scaling = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora) for every adapted "
      "projection, plus the base's tokenizer files.\n"
      "Example: percetrain merge-adapter --model base/ --adapter runs/job/final --out merged/");
  cmd->add_option("--model", opts->model, "Base Hugging Face model folder")->required();
  cmd->add_option("--adapter", opts->adapter, "PEFT adapter folder (adapter_config.json, adapter_model.safetensors)")
      ->required();
  cmd->add_option("--out", opts->out,
                  "Output folder: new or empty (written whole, then renamed into place), or see --overwrite")
      ->required();
  cmd->add_flag("--overwrite", opts->overwrite,
                "Write over a folder that holds files (a finished model): replaces its model files (weights, "
                "config.json, tokenizer files) and keeps the others; never --model or --adapter");
  cmd->add_option("--dtype", opts->dtype, "Stored dtype: float32, bfloat16, float16 or auto (the base's)")
      ->capture_default_str()
      ->check(dtype_spec());
  return [opts]() {
    const auto dtype = opts->dtype == "auto" ? c10::ScalarType::Undefined
                                             : parse_dtype(opts->dtype, c10::Device(c10::kCPU), "--dtype");
    opts->model = model_location(opts->model, "--model");
    opts->adapter = model_location(opts->adapter, "--adapter");
    verify_recorded_adapter(opts->adapter);
    const MergedAdapter merged = merge_adapter_folder(opts->model, opts->adapter, opts->out, dtype, opts->overwrite);
    std::cout << "merged " << opts->adapter << " (r " << merged.lora.rank << ", alpha " << merged.lora.alpha << ", "
              << merged.modules << " projections) into " << opts->model << ": wrote " << opts->out << " ("
              << dtype_name(merged.dtype) << ")\n";
    return 0;
  };
}

const CommandRegistration merge_adapter_registration(add_merge_adapter_command);

}  // namespace
}  // namespace percetrain::cli
