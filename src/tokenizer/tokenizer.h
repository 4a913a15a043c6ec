// Byte-level BPE tokenizer, GPT-4 style (the nanochat tokenizer): PCRE2 split pattern with
// \p{N}{1,2}, 256 byte tokens first, merges in rank order, the nine nanochat special tokens last.
// Every byte string round-trips. The JSON file format is docs/architecture.md's "The files kiln writes". OpenAI's
// GPT-2 tokenizer is the same machine with its own pattern, byte order and one special (gpt2_files.h).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln::tok {

// nanochat's special tokens (what ./tokenizer train writes), in id order after the merges.
inline const std::vector<std::string>& special_tokens() {
  static const std::vector<std::string> s = {
      "<|bos|>",          "<|user_start|>",   "<|user_end|>",   "<|assistant_start|>",
      "<|assistant_end|>", "<|python_start|>", "<|python_end|>", "<|output_start|>",
      "<|output_end|>"};
  return s;
}

using Merge = std::pair<uint32_t, uint32_t>;  // merge r joins (first, second) into token 256 + r

// Loading refuses (kiln::Error naming the file and the merge) merges that would make a token
// longer than kMaxTokenBytes, or more than kMaxVocabBytes of token text in all: lengths are
// counted before any string is built, so a small hostile file cannot make a loader allocate
// gigabytes. Trained tokenizers are orders of magnitude below both.
inline constexpr uint64_t kMaxTokenBytes = uint64_t(1) << 16;
inline constexpr uint64_t kMaxVocabBytes = uint64_t(1) << 26;

class Tokenizer {
 public:
  // Load a tokenizer JSON; throws kiln::Error naming the file on any problem.
  static Tokenizer load(const std::string& json_path);
  // Build from merges in rank order (what training produces); pattern "" means the GPT-4 one.
  // byte_ids: the id of each byte value (a permutation of 0..255; empty = byte b is id b, as
  // ./tokenizer train makes; GPT-2 orders them otherwise). specials: empty = nanochat's nine.
  static Tokenizer from_merges(std::vector<Merge> merges, const std::string& pattern = "",
                               std::vector<uint32_t> byte_ids = {}, std::vector<std::string> specials = {});
  // The JSON document (format "kiln.tokenizer" v1); save() writes it atomically (tmp + rename).
  std::string to_json() const;
  void save(const std::string& json_path) const;
  const std::vector<Merge>& merges() const;
  const std::string& pattern() const;
  // This tokenizer's special tokens in id order (nanochat's nine, or GPT-2's <|endoftext|>).
  const std::vector<std::string>& specials() const;
  // The id of byte value b (b, unless the tokenizer orders its byte tokens otherwise).
  uint32_t byte_id(uint8_t b) const;

  // Ordinary text: special-token strings in the text are encoded as plain bytes.
  std::vector<uint32_t> encode(std::string_view text) const;
  // Special-token strings in the text become their ids.
  std::vector<uint32_t> encode_with_specials(std::string_view text) const;
  // Many documents on all cores; same result as encode() on each.
  std::vector<std::vector<uint32_t>> encode_batch(const std::vector<std::string>& texts) const;
  std::string decode(const std::vector<uint32_t>& ids) const;
  std::string decode_token(uint32_t id) const;

  uint32_t vocab_size() const;  // bytes + merges + specials
  uint32_t bos_id() const;  // the first special: <|bos|>, or GPT-2's <|endoftext|>
  // Id of a special token such as "<|assistant_start|>"; throws kiln::Error if this tokenizer
  // has none such (a GPT-2 tokenizer has no chat tokens: chat stages and ./chat stop there).
  uint32_t special_id(std::string_view name) const;
  // The same, or nullopt when this tokenizer has no such token (the engine's optional tool tokens).
  std::optional<uint32_t> find_special(std::string_view name) const;
  // UTF-8 byte length of every token (0 for specials), for bits-per-byte.
  const std::vector<int32_t>& token_bytes() const;
  // SHA-256 (hex) of the tokenizer JSON file's bytes: shards and checkpoints carry it.
  const std::string& sha256() const;

  Tokenizer();
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::tok
