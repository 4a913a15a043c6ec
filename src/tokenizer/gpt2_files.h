// OpenAI's GPT-2 tokenizer files (encoder.json + vocab.bpe, the same pair Hugging Face calls
// vocab.json + merges.txt) <-> a kiln Tokenizer. Those files spell each byte as a printable
// Unicode character (bytes_to_unicode); kiln stores raw bytes, so both directions map through it.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace kiln::tok {

// The printable character (UTF-8) that GPT-2's files use for byte value b.
const std::string& gpt2_byte_char(uint8_t b);

// Reads encoder.json (token string -> id) and vocab.bpe (merges in rank order) into a tokenizer
// with GPT-2's split pattern, byte order and <|endoftext|> after the merges. Every id must match
// the merge order (GPT-2's files do); throws kiln::Error naming the file and entry otherwise.
Tokenizer import_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe);

// One BPE merge as its two tokens spelled in the byte alphabet; `where` (file:line, or file and
// index) names it in errors.
struct SpelledMerge {
  std::string a, b, where;
};
// The machine behind both readers (vocab.json + merges.txt here, tokenizer.json in
// hf_tokenizer_json.h): a vocabulary (spelled token -> id) and merges in rank order, as a kiln
// tokenizer splitting with `pattern`. The ids must follow kiln's layout: the bytes among 0..255,
// merge r makes id 256 + r, "<|...|>" specials after the merges in id order (none:
// default_specials). Throws kiln::Error naming vocab_where, merges_where or the merge's `where`.
Tokenizer tokenizer_from_spelled(const nlohmann::json& vocab, const std::vector<SpelledMerge>& merges,
                                 const std::string& pattern, const std::string& vocab_where, const std::string& merges_where,
                                 const std::string& hint,
                                 std::vector<std::string> default_specials);

// `tok`'s ordinary tokens spelled in the byte alphabet (id order; specials left out) and its merges.
struct SpelledVocab {
  nlohmann::ordered_json vocab;
  std::vector<std::pair<std::string, std::string>> merges;
};
SpelledVocab spell_tokenizer(const Tokenizer& tok);

// Writes `tok` as vocab.json + merges.txt into `dir` (Hugging Face's GPT2Tokenizer files).
// Throws kiln::Error unless the tokenizer splits with GPT-2's pattern (GPT2Tokenizer hard-codes it).
void write_gpt2_files(const Tokenizer& tok, const std::string& dir);

}  // namespace kiln::tok
