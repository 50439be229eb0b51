// Fuzz target: the start of a .safetensors file (length prefix, header JSON, entries), as
// SafetensorsFile validates it before reading any tensor byte.
#include "fuzz_util.hpp"
#include "percetrain/io/safetensors_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return percetrain::fuzz::expect_only_errors([&] {
    const percetrain::SafetensorsHeader header =
        percetrain::parse_safetensors_header(data, size, "model.safetensors");
    // What the checks promise: every tensor's bytes lie inside the file.
    for (const auto& entry : header.entries)
      if (8 + header.header_bytes + entry.data_end > size) __builtin_trap();
  });
}
