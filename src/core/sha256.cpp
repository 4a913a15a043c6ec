// SHA-256 through OpenSSL EVP (the non-deprecated API in OpenSSL 3); one call, whole buffer,
// because tokenizer files are at most a few MB.
#include "core/sha256.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace kiln {

std::string sha256_hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("OpenSSL EVP_Digest(sha256) failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

}  // namespace kiln
