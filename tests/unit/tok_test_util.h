// Helpers for the tokenizer, chat and shard tests: reading/writing whole files, and one small
// tokenizer trained on tinyshakespeare (vocab 512), trained once and shared by the test suites.
#pragma once
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/train.h"

namespace kiln::test {

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void spit(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

// Trained on tinyshakespeare at vocab 512; nullptr when the shared data is absent.
inline const tok::Tokenizer* shakespeare_512() {
  static std::unique_ptr<tok::Tokenizer> t = [] {
    std::unique_ptr<tok::Tokenizer> p;
    if (data_dir().empty()) return p;
    tok::TrainOptions o;
    o.inputs = {data_dir() + "/tinyshakespeare/input.txt"};
    o.vocab_size = 512;
    p = std::make_unique<tok::Tokenizer>(tok::train_tokenizer(o));
    return p;
  }();
  return t.get();
}

}  // namespace kiln::test
