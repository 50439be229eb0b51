// Fuzz target: a model folder's config.json, parsed, validated and written back.
#include "fuzz_util.hpp"
#include "percetrain/model/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  return percetrain::fuzz::expect_only_errors([&] {
    const percetrain::ModelConfig config = percetrain::parse_model_config(text, "config.json");
    percetrain::model_config_to_json(config);
  });
}
