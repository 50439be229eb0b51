// Shared by the fuzz targets: percetrain::Error is a parser's expected answer to bad input, so it
// is caught; anything else escaping, a crash, a sanitizer report or a hang is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "percetrain/util/error.hpp"

namespace percetrain::fuzz {

// A folder of this process's own (under $TMPDIR or /tmp), removed at exit, for parsers that read
// files by path.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/percetrain-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data())) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return std::filesystem::path(pattern);
  }();
  return dir;
}

// Writes the input as `name` in the scratch folder and returns its path.
inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = (scratch_dir() / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) std::abort();
  return path;
}

template <class F>
int expect_only_errors(F&& parse) {
  try {
    parse();
  } catch (const percetrain::Error&) {
  }
  return 0;
}

}  // namespace percetrain::fuzz
