// Fuzz target: a PEFT adapter folder's adapter_config.json.
#include "fuzz_util.hpp"
#include "model/adapter_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  return percetrain::fuzz::expect_only_errors(
      [&] { percetrain::parse_adapter_config(text, "adapter_config.json"); });
}
