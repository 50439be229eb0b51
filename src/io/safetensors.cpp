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

std::string errno_text() { return std::strerror(errno); }

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

std::string shape_string(c10::IntArrayRef shape) { return shape_string(shape.vec()); }

c10::ScalarType scalar_type_from_safetensors(const std::string& dtype, const std::string& where) {
  if (const DtypeInfo* d = find_dtype_by_name(dtype)) return d->type;
  fail(where, "unsupported dtype " + quote_tensor_name(dtype),
       "percetrain reads " + safetensors_dtype_list() + "; convert the checkpoint to one of them");
}

std::string safetensors_dtype_name(c10::ScalarType type) {
  if (const DtypeInfo* d = find_dtype_by_type(type)) return d->name;
  fail("", std::string("torch dtype ") + c10::toString(type) + " has no safetensors name here",
       "convert the tensor to one of " + safetensors_dtype_list());
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
    if (file_size > 0) {  // an empty file cannot be mapped; the header parser names it
      map_size_ = static_cast<size_t>(file_size);
      void* mapped = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd_, 0);
      if (mapped == MAP_FAILED) fail(path, "cannot memory-map: " + errno_text());
      map_ = static_cast<const uint8_t*>(mapped);
    }
    // The mapping stays valid without the descriptor; closing it spares descriptors when a
    // model has many shards.
    ::close(fd_);
    fd_ = -1;

    SafetensorsHeader header = parse_safetensors_header(map_, file_size, path);
    data_ = map_ + 8 + header.header_bytes;
    entries_ = std::move(header.entries);
    metadata_ = std::move(header.metadata);
    for (size_t k = 0; k < entries_.size(); ++k) index_[entries_[k].name] = k;
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
    fail(path_, "tensor " + quote_tensor_name(name) + " is absent from this file",
         "it holds " + std::to_string(entries_.size()) +
             " tensors; check the name against the model's weight names");
  const c10::ScalarType type = scalar_type_from_safetensors(entry->dtype, path_);
  at::Tensor out = at::empty(entry->shape, at::TensorOptions().dtype(type).device(at::kCPU));
  const size_t bytes = static_cast<size_t>(entry->data_end - entry->data_begin);
  const uint8_t* source = data_ + entry->data_begin;
  if (type == c10::ScalarType::Bool) {
    // A torch bool holding anything but 0 or 1 is undefined behaviour in its kernels.
    if (std::any_of(source, source + bytes, [](uint8_t b) { return b > 1; }))
      fail(path_, "tensor " + quote_tensor_name(name) + " is BOOL but holds a byte other than 0 or 1",
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
    const std::string tensor_label = "tensor " + quote_tensor_name(name);
    if (name == "__metadata__")
      fail(path, "a tensor cannot be named __metadata__", "that key holds the file's metadata");
    if (!seen.insert(name).second)
      fail(path, "duplicate tensor name " + quote_tensor_name(name), "each tensor needs its own name");
    if (!tensor.defined()) fail(path, tensor_label + " is undefined");
    if (tensor.layout() != at::kStrided)
      fail(path, tensor_label + " is not a dense tensor", "convert it with .to_dense()");
    const DtypeInfo* dtype = find_dtype_by_type(tensor.scalar_type());
    if (!dtype)
      fail(path,
           tensor_label + " has dtype " + c10::toString(tensor.scalar_type()) +
               ", which safetensors cannot hold here",
           "convert it to one of " + safetensors_dtype_list());
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
