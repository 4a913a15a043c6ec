// SHA-256 as lowercase hex, through OpenSSL's EVP interface: shards and checkpoints name the
// tokenizer they were made with by the hash of its JSON file's bytes.
#pragma once
#include <string>
#include <string_view>

namespace kiln {

std::string sha256_hex(std::string_view bytes);

}  // namespace kiln
