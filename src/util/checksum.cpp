// SHA-256 through OpenSSL's EVP interface, read in 1 MiB blocks; CRC-32C from a 256-entry table.
#include "percetrain/util/checksum.hpp"

#include <openssl/evp.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "percetrain/util/error.hpp"

namespace percetrain {
namespace {

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) fail("sha256", "OpenSSL cannot start a digest");
  }
  void update(const void* data, size_t size) { EVP_DigestUpdate(ctx_.get(), data, size); }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &length);
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < length; ++i) {
      out.push_back(digits[digest[i] >> 4]);
      out.push_back(digits[digest[i] & 15]);
    }
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

}  // namespace

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot read to check it: ") + std::strerror(errno));
  Sha256 sha;
  std::vector<char> block(1 << 20);
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    if (in.gcount() > 0) sha.update(block.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) fail(path, "reading failed while checking it");
  return sha.hex();
}

std::string checksum_problem(const std::string& folder, const std::map<std::string, std::string>& files_sha256,
                             std::string* bad_file) {
  for (const auto& [file, sha] : files_sha256) {
    const std::string path = (std::filesystem::path(folder) / file).string();
    std::error_code ec;
    std::string problem;
    if (!std::filesystem::exists(path, ec)) problem = file + " is missing";
    else if (sha256_file(path) != sha) problem = file + " does not match its checksum";
    if (problem.empty()) continue;
    if (bad_file) *bad_file = path;
    return problem;
  }
  return "";
}

namespace {

// One byte at a time: event files are small (one record per metrics row), so the slicing-by-8
// or SSE4.2 speed is not worth its code.
const std::array<uint32_t, 256>& crc32c_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto& table = crc32c_table();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

}  // namespace percetrain
