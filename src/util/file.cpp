// Reading whole files with clear errors, and durable writes (temporary file, fsync, rename).
#include "percetrain/util/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "percetrain/util/error.hpp"

namespace fs = std::filesystem;

namespace percetrain {

std::string read_text_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    fail(path, "is a folder, not " + what, "give the path of the file itself");
  if (!fs::exists(path, ec)) fail(path, what + " does not exist", "check the path (relative paths in a config resolve against the config's folder)");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot read " + what + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail(path, "reading " + what + " failed");
  return text.str();
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open to flush it to disk: ") + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0 && saved != EINVAL) fail(path, std::string("cannot flush to disk: ") + std::strerror(saved));
}

void fsync_tree(const std::string& folder) {
  std::vector<std::string> folders = {folder};
  for (const auto& entry : fs::recursive_directory_iterator(folder)) {
    if (entry.is_regular_file()) fsync_path(entry.path().string());
    else if (entry.is_directory()) folders.push_back(entry.path().string());
  }
  for (auto it = folders.rbegin(); it != folders.rend(); ++it) fsync_path(*it);
}

void write_file_checked(const std::string& path, const std::function<void(const ByteWriter&)>& produce) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, std::string("cannot create: ") + std::strerror(errno), "check the folder's permissions");
  int error = 0;
  const ByteWriter writer = [&](const void* data, size_t size) {
    const char* p = static_cast<const char*>(data);
    while (error == 0 && size > 0) {
      const ssize_t n = ::write(fd, p, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        error = errno;
        break;
      }
      p += n;
      size -= static_cast<size_t>(n);
    }
  };
  try {
    produce(writer);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0)
    fail(path, std::string("writing failed: ") + std::strerror(error),
         error == ENOSPC ? "the disk is full; free some space" : "");
}

void write_file_atomic(const std::string& path, const std::string& bytes, const std::string& what) {
  const fs::path target(path);
  const fs::path folder = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const fs::path tmp = folder / ("." + target.filename().string() + ".tmp" + std::to_string(::getpid()));
  try {
    write_file_checked(tmp.string(), [&](const ByteWriter& write) { write(bytes.data(), bytes.size()); });
  } catch (const Error& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    fail(path, "cannot write " + what + ": " + e.what(), "check the free disk space and the folder's permissions");
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail(path, "cannot replace " + what + ": " + ec.message(), "check the folder's permissions");
  }
  fsync_path(folder.string());
}

}  // namespace percetrain
