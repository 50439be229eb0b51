// Safetensors headers: the length prefix and the JSON, validated before any tensor byte is read.
#include "percetrain/io/safetensors_header.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <set>

#include "percetrain/util/error.hpp"

namespace percetrain {
namespace {

using json = nlohmann::json;

// The Python library refuses larger headers too; a bigger one is a corrupt or hostile length.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Root object -> tensor entry -> shape array. Anything deeper is not safetensors, and bounding
// the depth keeps a hostile header from building deep structures.
constexpr int kMaxJsonDepth = 3;

// The element types percetrain reads (io/safetensors.cpp maps the same names to torch types).
struct DtypeSize {
  const char* name;
  size_t bytes;
};
constexpr DtypeSize kDtypeSizes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                                     {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};


// JSON numbers arrive as int64, uint64 or double (nlohmann falls back to double for integers
// beyond uint64), so only the two integer kinds with a non-negative value are accepted.
bool as_u64(const json& value, uint64_t* out) {
  if (value.is_number_unsigned()) {
    *out = value.get<uint64_t>();
    return true;
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(value.get<int64_t>());
    return true;
  }
  return false;
}

// Parses the header while rejecting what nlohmann would silently accept: duplicate keys (the
// last would win, hiding a tensor) and nesting beyond what the format uses.
json parse_header(const std::string& where, const char* text, size_t size) {
  std::vector<std::set<std::string>> keys_per_open_object;
  int depth = 0;
  auto guard = [&](int /*parser_depth*/, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (++depth > kMaxJsonDepth)
          fail(where,
               "header JSON is nested more than " + std::to_string(kMaxJsonDepth) +
                   " levels deep, which safetensors never does",
               "the file is corrupt or not a safetensors file");
        if (event == json::parse_event_t::object_start) keys_per_open_object.emplace_back();
        break;
      case json::parse_event_t::object_end:
        --depth;
        keys_per_open_object.pop_back();
        break;
      case json::parse_event_t::array_end:
        --depth;
        break;
      case json::parse_event_t::key:
        if (!keys_per_open_object.back().insert(parsed.get<std::string>()).second)
          fail(where, "header JSON has the key " + quote_tensor_name(parsed.get<std::string>()) + " twice",
               "the file is corrupt; re-save it");
        break;
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return json::parse(text, text + size, guard);
  } catch (const json::exception& e) {
    fail(where, std::string("header is not valid JSON: ") + e.what(),
         "the file is corrupt or not a safetensors file");
  }
}

TensorEntry parse_entry(const std::string& where, const std::string& name, const json& value) {
  const std::string tensor = "tensor " + quote_tensor_name(name);
  const std::string corrupt = "the file is corrupt; re-download or re-save it";
  if (!value.is_object()) fail(where, tensor + " is not a JSON object in the header", corrupt);

  TensorEntry entry;
  entry.name = name;

  auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string())
    fail(where, tensor + " has no string \"dtype\" in the header", corrupt);
  entry.dtype = dtype->get<std::string>();

  auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array())
    fail(where, tensor + " has no \"shape\" array in the header", corrupt);
  for (const auto& dim : *shape) {
    uint64_t size = 0;
    // Dimensions must also fit torch's int64 sizes, even for tensors with a zero dimension.
    if (!as_u64(dim, &size) || size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(where,
           tensor + " has the shape entry " + quote_tensor_name(dim.dump()) +
               "; a shape must be an array of non-negative integers",
           corrupt);
    entry.shape.push_back(static_cast<int64_t>(size));
  }

  auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
      !as_u64((*offsets)[0], &entry.data_begin) || !as_u64((*offsets)[1], &entry.data_end))
    fail(where, tensor + " needs \"data_offsets\" as two non-negative integers in the header",
         corrupt);
  if (entry.data_begin > entry.data_end)
    fail(where,
         tensor + " has data_offsets [" + std::to_string(entry.data_begin) + ", " +
             std::to_string(entry.data_end) + ") that begin after they end",
         corrupt);

  uint64_t bytes = safetensors_element_size(entry.dtype);
  if (bytes == 0)
    fail(where, tensor + " has unsupported dtype " + quote_tensor_name(entry.dtype),
         "percetrain reads " + safetensors_dtype_list() + "; convert the checkpoint to one of them");
  for (int64_t dim : entry.shape)
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes))
      fail(where, tensor + " has shape " + shape_string(entry.shape) + " whose byte count overflows",
           corrupt);
  if (bytes != entry.data_end - entry.data_begin)
    fail(where,
         tensor + " has shape " + shape_string(entry.shape) + " of " + entry.dtype +
             ", which needs " + std::to_string(bytes) + " bytes, but its data_offsets [" +
             std::to_string(entry.data_begin) + ", " + std::to_string(entry.data_end) + ") span " +
             std::to_string(entry.data_end - entry.data_begin),
         corrupt);
  return entry;
}

}  // namespace

size_t safetensors_element_size(const std::string& dtype) {
  for (const auto& d : kDtypeSizes)
    if (dtype == d.name) return d.bytes;
  return 0;
}

std::string safetensors_dtype_list() {
  std::string out;
  for (const auto& d : kDtypeSizes) out += (out.empty() ? "" : ", ") + std::string(d.name);
  return out;
}

// Names come from untrusted headers; a megabyte-long one should not become the error message.
std::string quote_tensor_name(const std::string& name) {
  constexpr size_t kMaxShown = 200;
  if (name.size() <= kMaxShown) return "'" + name + "'";
  return "'" + name.substr(0, kMaxShown) + "...'";
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

SafetensorsHeader parse_safetensors_header(const uint8_t* file, uint64_t file_size, const std::string& where) {
  const std::string& path = where;
  if (file_size == 0)
    fail(path, "file is empty", "the download or save did not complete; redo it");
  if (file_size < 8)
    fail(path,
         "file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length",
         "the file is truncated or not a safetensors file");

  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | file[i];
  const uint64_t after_length = file_size - 8;
  const std::string corrupt = "the file is corrupt or not a safetensors file";
  if (header_size == 0) fail(path, "header length is 0", corrupt);
  if (header_size > kMaxHeaderBytes)
    fail(path,
         "header length " + std::to_string(header_size) + " exceeds the limit of " +
             std::to_string(kMaxHeaderBytes) + " bytes",
         corrupt);
  if (header_size > after_length)
    fail(path,
         "header length " + std::to_string(header_size) + " goes beyond the end of the file (" +
             std::to_string(file_size) + " bytes)",
         "the file is truncated or corrupt; re-download or re-save it");

  const json header = parse_header(path, reinterpret_cast<const char*>(file + 8), header_size);
  if (!header.is_object()) fail(path, "header is not a JSON object", corrupt);

  SafetensorsHeader out;
  out.header_bytes = header_size;
  const uint64_t data_size = after_length - header_size;
  // nlohmann::json keeps object keys sorted, so the entries come out sorted by name.
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (value.is_null()) continue;
      if (!value.is_object()) fail(path, "__metadata__ is not a JSON object", corrupt);
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string())
          fail(path, "__metadata__ key " + quote_tensor_name(key) + " is not a string", corrupt);
        out.metadata[key] = text.get<std::string>();
      }
      continue;
    }
    TensorEntry entry = parse_entry(path, name, value);
    if (entry.data_end > data_size)
      fail(path,
           "tensor " + quote_tensor_name(name) + " has data_offsets [" +
               std::to_string(entry.data_begin) + ", " + std::to_string(entry.data_end) +
               ") but the data section holds " + std::to_string(data_size) + " bytes",
           "the file is truncated or corrupt; re-download or re-save it");
    out.entries.push_back(std::move(entry));
  }

  // Overlapping tensors would alias each other's bytes; Python never writes them.
  std::vector<const TensorEntry*> by_begin;
  for (const auto& e : out.entries)
    if (e.data_end > e.data_begin) by_begin.push_back(&e);  // empty ranges overlap nothing
  std::sort(by_begin.begin(), by_begin.end(), [](const TensorEntry* a, const TensorEntry* b) {
    return a->data_begin != b->data_begin ? a->data_begin < b->data_begin
                                          : a->data_end < b->data_end;
  });
  for (size_t i = 1; i < by_begin.size(); ++i)
    if (by_begin[i]->data_begin < by_begin[i - 1]->data_end)
      fail(path,
           "tensors " + quote_tensor_name(by_begin[i - 1]->name) + " and " +
               quote_tensor_name(by_begin[i]->name) + " overlap in the data section",
           "the file is corrupt; re-save it");
  return out;
}

}  // namespace percetrain
