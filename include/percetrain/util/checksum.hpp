// Checksums of the files a run writes, so that a damaged checkpoint is found before it is used.
#pragma once

#include <string>

namespace percetrain {

// SHA-256 of a file's bytes as 64 lowercase hex digits; an unreadable file is an error naming it.
std::string sha256_file(const std::string& path);

// SHA-256 of `bytes` (tests, small files).
std::string sha256_bytes(const std::string& bytes);

}  // namespace percetrain
