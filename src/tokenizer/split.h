// Pre-tokenization: the GPT-4 split pattern (with \p{N}{1,2}, as nanochat) run by PCRE2 with JIT,
// UTF and UCP (Unicode \s, like tiktoken). Bytes that no alternative can match (invalid UTF-8) come
// out as chunks of their own, so every byte string is covered exactly once and round-trips.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace kiln::tok {

// nanochat's SPLIT_PATTERN: GPT-4's, with numbers grouped by at most two digits.
inline constexpr const char* kGpt4Pattern =
    R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)";

// GPT-2's pattern (OpenAI's encoder.py; tiktoken's r50k_base is its possessive rewrite).
inline constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class Splitter {
 public:
  // Throws kiln::Error (naming `where`) when the pattern does not compile.
  explicit Splitter(const std::string& pattern, const std::string& where = "split pattern");
  ~Splitter();
  Splitter(const Splitter&) = delete;
  Splitter& operator=(const Splitter&) = delete;

  // Calls fn(chunk) for consecutive chunks covering `text` exactly. Thread-safe: each thread gets
  // its own PCRE2 match data and JIT stack.
  template <class Fn>
  void split(std::string_view text, Fn&& fn) const {
    size_t pos = 0;
    while (pos < text.size()) {
      size_t b = 0, e = 0;
      if (!next_match(text, pos, &b, &e)) { fn(text.substr(pos)); return; }
      if (b > pos) fn(text.substr(pos, b - pos));  // unmatched bytes (invalid UTF-8)
      fn(text.substr(b, e - b));
      pos = e;
    }
  }

 private:
  bool next_match(std::string_view text, size_t start, size_t* b, size_t* e) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The largest p <= text.size() such that splitting text[0,p) and text[p,..) separately gives the
// same chunks as splitting the whole: p follows a '\n' and precedes printable non-space ASCII
// (no alternative of the GPT-4 pattern can span such a boundary). 0 when there is none.
size_t safe_cut(std::string_view text);

}  // namespace kiln::tok
