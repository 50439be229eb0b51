// Safetensors reading (mmap, header fully validated before any byte is read) and atomic writing.
#include "percetrain/io/safetensors.hpp"

#include "percetrain/util/error.hpp"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

// Tensor bytes are copied verbatim between the file (little-endian by definition) and memory.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors stores little-endian data; big-endian hosts are not supported");

namespace percetrain {
namespace {

using json = nlohmann::json;

// The Python library refuses larger headers too; a bigger one is a corrupt or hostile length.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Root object -> tensor entry -> shape array. Anything deeper is not safetensors, and bounding
// the depth keeps a hostile header from building deep structures.
constexpr int kMaxJsonDepth = 3;

struct DtypeInfo {
  const char* name;
  c10::ScalarType type;
};

constexpr DtypeInfo kDtypes[] = {
    {"F64", c10::ScalarType::Double}, {"F32", c10::ScalarType::Float},
    {"F16", c10::ScalarType::Half},   {"BF16", c10::ScalarType::BFloat16},
    {"I64", c10::ScalarType::Long},   {"I32", c10::ScalarType::Int},
    {"I16", c10::ScalarType::Short},  {"I8", c10::ScalarType::Char},
    {"U8", c10::ScalarType::Byte},    {"BOOL", c10::ScalarType::Bool},
};

const DtypeInfo* find_dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo* find_dtype_by_type(c10::ScalarType type) {
  for (const auto& d : kDtypes)
    if (type == d.type) return &d;
  return nullptr;
}

std::string supported_dtype_list() {
  std::string out;
  for (const auto& d : kDtypes) out += (out.empty() ? "" : ", ") + std::string(d.name);
  return out;
}

std::string errno_text() { return std::strerror(errno); }

// Names come from untrusted headers; a megabyte-long one should not become the error message.
std::string in_quotes(const std::string& name) {
  constexpr size_t kMaxShown = 200;
  if (name.size() <= kMaxShown) return "'" + name + "'";
  return "'" + name.substr(0, kMaxShown) + "...'";
}

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
          fail(where, "header JSON has the key " + in_quotes(parsed.get<std::string>()) + " twice",
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
  const std::string tensor = "tensor " + in_quotes(name);
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
           tensor + " has the shape entry " + in_quotes(dim.dump()) +
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

  const DtypeInfo* known = find_dtype_by_name(entry.dtype);
  if (!known)
    fail(where, tensor + " has unsupported dtype " + in_quotes(entry.dtype),
         "percetrain reads " + supported_dtype_list() + "; convert the checkpoint to one of them");
  const c10::ScalarType type = known->type;
  uint64_t bytes = c10::elementSize(type);
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

// Writes all of `size` bytes, resuming after partial writes and signals.
void write_all(int fd, const void* data, size_t size, const std::string& where) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(where, "could not write: " + errno_text(), "check free disk space and permissions");
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

// Owns the temporary file until it has been renamed into place; otherwise closes and removes it.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  // fsync before rename, so that a crash leaves either the old file or the complete new one.
  void commit(const std::string& final_path) {
    if (::fsync(fd_) != 0)
      fail(final_path, "could not flush to disk: " + errno_text(), "check free disk space");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0)
      fail(final_path, "could not close after writing: " + errno_text(), "check free disk space");
    if (::rename(path_.c_str(), final_path.c_str()) != 0)
      fail(final_path, "could not rename " + path_ + " over it: " + errno_text(),
           "check that the path is not a directory and that the folder is writable");
    committed_ = true;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool committed_ = false;
};

// Makes the rename itself durable. Best effort: some filesystems refuse fsync on directories.
void sync_parent_folder(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string folder =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string shape_string(c10::IntArrayRef shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

c10::ScalarType scalar_type_from_safetensors(const std::string& dtype, const std::string& where) {
  if (const DtypeInfo* d = find_dtype_by_name(dtype)) return d->type;
  fail(where, "unsupported dtype " + in_quotes(dtype),
       "percetrain reads " + supported_dtype_list() + "; convert the checkpoint to one of them");
}

std::string safetensors_dtype_name(c10::ScalarType type) {
  if (const DtypeInfo* d = find_dtype_by_type(type)) return d->name;
  fail("", std::string("torch dtype ") + c10::toString(type) + " has no safetensors name here",
       "convert the tensor to one of " + supported_dtype_list());
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail(path, "cannot open: " + errno_text(), "check the path and its permissions");
  // The destructor does not run when the constructor throws, so unwind by hand.
  auto release = [this] {
    if (map_) ::munmap(const_cast<uint8_t*>(map_), map_size_);
    if (fd_ >= 0) ::close(fd_);
    map_ = nullptr;
    fd_ = -1;
  };
  try {
    struct stat info {};
    if (::fstat(fd_, &info) != 0) fail(path, "cannot stat: " + errno_text());
    if (!S_ISREG(info.st_mode)) fail(path, "is not a regular file", "pass a .safetensors file");
    const uint64_t file_size = static_cast<uint64_t>(info.st_size);
    if (file_size == 0)
      fail(path, "file is empty", "the download or save did not complete; redo it");
    if (file_size < 8)
      fail(path,
           "file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length",
           "the file is truncated or not a safetensors file");

    map_size_ = static_cast<size_t>(file_size);
    void* mapped = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (mapped == MAP_FAILED) fail(path, "cannot memory-map: " + errno_text());
    map_ = static_cast<const uint8_t*>(mapped);
    // The mapping stays valid without the descriptor; closing it spares descriptors when a
    // model has many shards.
    ::close(fd_);
    fd_ = -1;

    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | map_[i];
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

    const json header = parse_header(path, reinterpret_cast<const char*>(map_ + 8), header_size);
    if (!header.is_object()) fail(path, "header is not a JSON object", corrupt);

    const uint64_t data_size = after_length - header_size;
    data_ = map_ + 8 + header_size;
    // nlohmann::json keeps object keys sorted, so entries_ come out sorted by name.
    for (const auto& [name, value] : header.items()) {
      if (name == "__metadata__") {
        if (value.is_null()) continue;
        if (!value.is_object()) fail(path, "__metadata__ is not a JSON object", corrupt);
        for (const auto& [key, text] : value.items()) {
          if (!text.is_string())
            fail(path, "__metadata__ key " + in_quotes(key) + " is not a string", corrupt);
          metadata_[key] = text.get<std::string>();
        }
        continue;
      }
      TensorEntry entry = parse_entry(path, name, value);
      if (entry.data_end > data_size)
        fail(path,
             "tensor " + in_quotes(name) + " has data_offsets [" +
                 std::to_string(entry.data_begin) + ", " + std::to_string(entry.data_end) +
                 ") but the data section holds " + std::to_string(data_size) + " bytes",
             "the file is truncated or corrupt; re-download or re-save it");
      index_[name] = entries_.size();
      entries_.push_back(std::move(entry));
    }

    // Overlapping tensors would alias each other's bytes; Python never writes them.
    std::vector<const TensorEntry*> by_begin;
    for (const auto& e : entries_)
      if (e.data_end > e.data_begin) by_begin.push_back(&e);  // empty ranges overlap nothing
    std::sort(by_begin.begin(), by_begin.end(), [](const TensorEntry* a, const TensorEntry* b) {
      return a->data_begin != b->data_begin ? a->data_begin < b->data_begin
                                            : a->data_end < b->data_end;
    });
    for (size_t i = 1; i < by_begin.size(); ++i)
      if (by_begin[i]->data_begin < by_begin[i - 1]->data_end)
        fail(path,
             "tensors " + in_quotes(by_begin[i - 1]->name) + " and " +
                 in_quotes(by_begin[i]->name) + " overlap in the data section",
             "the file is corrupt; re-save it");
  } catch (...) {
    release();
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), map_size_);
  if (fd_ >= 0) ::close(fd_);
}

const TensorEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

at::Tensor SafetensorsFile::load(const std::string& name) const {
  const TensorEntry* entry = find(name);
  if (!entry)
    fail(path_, "tensor " + in_quotes(name) + " is absent from this file",
         "it holds " + std::to_string(entries_.size()) +
             " tensors; check the name against the model's weight names");
  const c10::ScalarType type = scalar_type_from_safetensors(entry->dtype, path_);
  at::Tensor out = at::empty(entry->shape, at::TensorOptions().dtype(type).device(at::kCPU));
  const size_t bytes = static_cast<size_t>(entry->data_end - entry->data_begin);
  const uint8_t* source = data_ + entry->data_begin;
  if (type == c10::ScalarType::Bool) {
    // A torch bool holding anything but 0 or 1 is undefined behaviour in its kernels.
    if (std::any_of(source, source + bytes, [](uint8_t b) { return b > 1; }))
      fail(path_, "tensor " + in_quotes(name) + " is BOOL but holds a byte other than 0 or 1",
           "the file is corrupt; re-save it");
  }
  // memcpy, not a view of the mapping: offsets need not be aligned, and the tensor must
  // outlive this file.
  if (bytes > 0) std::memcpy(out.data_ptr(), source, bytes);
  return out;
}

at::Tensor SafetensorsFile::load(const std::string& name, c10::ScalarType dtype) const {
  at::Tensor stored = load(name);
  return stored.scalar_type() == dtype ? stored : stored.to(dtype);
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Validate everything before the temporary file exists, so the common mistakes leave no trace.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const std::string tensor_label = "tensor " + in_quotes(name);
    if (name == "__metadata__")
      fail(path, "a tensor cannot be named __metadata__", "that key holds the file's metadata");
    if (!seen.insert(name).second)
      fail(path, "duplicate tensor name " + in_quotes(name), "each tensor needs its own name");
    if (!tensor.defined()) fail(path, tensor_label + " is undefined");
    if (tensor.layout() != at::kStrided)
      fail(path, tensor_label + " is not a dense tensor", "convert it with .to_dense()");
    const DtypeInfo* dtype = find_dtype_by_type(tensor.scalar_type());
    if (!dtype)
      fail(path,
           tensor_label + " has dtype " + c10::toString(tensor.scalar_type()) +
               ", which safetensors cannot hold here",
           "convert it to one of " + supported_dtype_list());
    const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
    header[name] = {{"dtype", dtype->name},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("cannot encode the header: ") + e.what(),
         "tensor names and metadata must be valid UTF-8");
  }
  // Spaces keep the JSON valid and put the data section on an 8-byte boundary, as Python does.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  TempFile temp(path + ".tmp." + std::to_string(::getpid()));
  if (temp.fd() < 0)
    fail(path, "cannot create " + temp.path() + ": " + errno_text(),
         "check that the folder exists and is writable");
  try {
    uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(header_text.size() >> (8 * i));
    write_all(temp.fd(), length, sizeof(length), path);
    write_all(temp.fd(), header_text.data(), header_text.size(), path);
    // One tensor at a time, so that saving from a GPU holds at most one extra CPU copy.
    for (const auto& [name, tensor] : tensors) {
      const at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
      write_all(temp.fd(), cpu.data_ptr(), cpu.numel() * cpu.element_size(), path);
    }
    temp.commit(path);
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    fail(path, std::string("could not write: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    fail(path, std::string("could not write: ") + e.what());
  }
  sync_parent_folder(path);
}

}  // namespace percetrain
