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

// Checks that model.path is a model folder before anything loads it. A folder is only ever read;
// the one exception is `train` (may_initialise) with model.init_arch set and model.path absent
// altogether, which writes a random init_arch/init_preset model there with `tokenizer_path`'s
// vocabulary and returns the line that says so ("" otherwise). A path that exists without a
// config.json is an error, never replaced.
std::string prepare_model_folder(const ModelSection& model, const std::string& tokenizer_path, bool may_initialise);

}  // namespace percetrain
