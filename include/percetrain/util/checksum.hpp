// Checksums of the files a run writes, so that a damaged checkpoint is found before it is used,
// and the CRC-32C that TensorBoard's record files carry.
#pragma once

#include <cstddef>
#include <cstdint>
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

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of `size` bytes, continuing a CRC
// returned earlier (0 to start): crc32c("123456789") = 0xE3069283.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
// The masked CRC-32C that TFRecord files (TensorBoard event files) store, so that a CRC over
// bytes that hold CRCs is not degenerate: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t size);

}  // namespace percetrain
