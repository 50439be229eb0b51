// Reads (memory-mapped, bounds-checked) and writes the safetensors format used by Hugging Face.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "percetrain/io/safetensors_header.hpp"

namespace percetrain {

// One .safetensors file, memory-mapped read-only. The header is fully validated on open
// (parse_safetensors_header: length, JSON, dtypes, shapes against byte counts, offsets in range,
// no overlaps), so that later reads can never go out of bounds. Entries are kept sorted by name,
// not in header order.
// Unknown keys inside an entry are ignored, as the Python library does.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorEntry>& entries() const { return entries_; }  // sorted by name
  const TensorEntry* find(const std::string& name) const;  // nullptr when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // A CPU tensor that owns its memory (a copy out of the mapping), converted to `dtype`
  // (or kept in the stored dtype when dtype is c10::nullopt-like: pass the stored one).
  at::Tensor load(const std::string& name) const;
  at::Tensor load(const std::string& name, c10::ScalarType dtype) const;

 private:
  std::string path_;
  int fd_ = -1;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section inside the mapping
  std::vector<TensorEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// "[4096, 512]": a tensor shape as error lines print it (also for std::vector<int64_t>, in
// safetensors_header.hpp).
std::string shape_string(c10::IntArrayRef shape);

// Element type names of the format <-> torch scalar types. Unknown names are an error.
c10::ScalarType scalar_type_from_safetensors(const std::string& dtype, const std::string& where);
std::string safetensors_dtype_name(c10::ScalarType type);

// Writes tensors (any device; contiguous copies are made on the CPU) in the given order to
// `path` atomically: a temporary file in the same folder, fsync, then rename.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace percetrain
