// Checksums of the files a run writes, so that a damaged checkpoint is found before it is used.
#pragma once

#include <map>
#include <string>

namespace percetrain {

// SHA-256 of a file's bytes as 64 lowercase hex digits; an unreadable file is an error naming it.
std::string sha256_file(const std::string& path);

// The one check of recorded checksums (checkpoints, per-user adapters): "" when every file of
// `files_sha256` (name relative to `folder` -> SHA-256) exists and matches; else what is wrong
// with the first one that does not ("adapter_model.safetensors does not match its checksum"),
// and *bad_file, when given, is set to its path.
std::string checksum_problem(const std::string& folder, const std::map<std::string, std::string>& files_sha256,
                             std::string* bad_file = nullptr);

}  // namespace percetrain
