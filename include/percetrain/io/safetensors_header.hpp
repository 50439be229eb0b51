// The header of a safetensors file (length prefix and JSON), parsed and fully validated without
// LibTorch, so that the parser can be tested and fuzzed alone (fuzz/); io/safetensors.hpp maps
// and loads the tensors it describes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace percetrain {

struct TensorEntry {
  std::string name;
  std::string dtype;              // as written in the header: "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;
  uint64_t data_begin = 0;        // byte offsets relative to the start of the data section
  uint64_t data_end = 0;
};

struct SafetensorsHeader {
  uint64_t header_bytes = 0;                    // the JSON's length; the data section starts at 8 + this
  std::vector<TensorEntry> entries;             // sorted by name
  std::map<std::string, std::string> metadata;  // __metadata__
};

// Validates the start of a safetensors file of `file_size` bytes (`file` points at all of them):
// the 8-byte length, the header JSON (no duplicate keys, at most 3 levels deep), each entry's
// dtype, shape against its byte count, offsets inside the data section and no two tensors
// overlapping. Errors are percetrain::Error naming `where`.
SafetensorsHeader parse_safetensors_header(const uint8_t* file, uint64_t file_size, const std::string& where);

// Bytes per element of a safetensors dtype ("F32" -> 4); 0 for a name percetrain does not read.
size_t safetensors_element_size(const std::string& dtype);
// "F64, F32, ...": the dtypes percetrain reads, for messages.
std::string safetensors_dtype_list();
// A tensor name from a header in quotes for a message, cut after 200 characters.
std::string quote_tensor_name(const std::string& name);
// "[4096, 512]": a tensor shape as error lines print it.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace percetrain
