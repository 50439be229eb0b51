// SHA-256 through OpenSSL's EVP interface, read in 1 MiB blocks.
#include "percetrain/util/checksum.hpp"

#include <openssl/evp.h>

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

}  // namespace percetrain
