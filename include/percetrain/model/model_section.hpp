// The "model" section of a job config, and the one place that decides whether a model folder
// may be created.
#pragma once

#include <cstdint>
#include <string>

namespace percetrain {

struct ModelSection {
  std::string path;             // Hugging Face model folder
  std::string device = "auto";  // cpu | cuda | cuda:N | auto
  std::string dtype = "auto";   // float32 | bfloat16 | float16 | auto
  // Demo and CI: `train` creates a random arch/preset model at `path` when `path` does not exist.
  std::string init_arch;
  std::string init_preset = "tiny";
  uint64_t init_seed = 0;
};

// Creates the model folder a demo config names (model.init_arch set, model.path absent) with
// `tokenizer_path`'s vocabulary; a folder that exists is left alone; anything else that is not
// a model folder is an error.
void ensure_model_folder(const ModelSection& model, const std::string& tokenizer_path);

}  // namespace percetrain
