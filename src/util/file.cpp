// Atomic whole-file writes (temporary file + rename).
#include "percetrain/util/file.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "percetrain/util/error.hpp"

namespace percetrain {

void write_file_atomic(const std::string& path, const std::string& bytes, const std::string& what) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path tmp = target.parent_path() / ("." + target.filename().string() + ".tmp" + std::to_string(::getpid()));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(path, "cannot write " + what, "check that the folder exists and is writable");
    out << bytes;
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      fail(path, "writing " + what + " failed", "check the free disk space");
    }
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail(path, "cannot replace " + what + ": " + ec.message(), "check the folder's permissions");
  }
}

}  // namespace percetrain
