// OpenAI's GPT-2 tokenizer files (encoder.json + vocab.bpe, the same pair Hugging Face calls
// vocab.json + merges.txt) <-> a kiln Tokenizer. Those files spell each byte as a printable
// Unicode character (bytes_to_unicode); kiln stores raw bytes, so both directions map through it.
#pragma once
#include <string>

#include "tokenizer/tokenizer.h"

namespace kiln::tok {

// The printable character (UTF-8) that GPT-2's files use for byte value b.
const std::string& gpt2_byte_char(uint8_t b);

// Reads encoder.json (token string -> id) and vocab.bpe (merges in rank order) into a tokenizer
// with GPT-2's split pattern, byte order and <|endoftext|> after the merges. Every id must match
// the merge order (GPT-2's files do); throws kiln::Error naming the file and entry otherwise.
Tokenizer import_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe);

// Writes `tok` as vocab.json + merges.txt into `dir` (Hugging Face's GPT2Tokenizer files).
// Throws kiln::Error unless the tokenizer splits with GPT-2's pattern (GPT2Tokenizer hard-codes it).
void write_gpt2_files(const Tokenizer& tok, const std::string& dir);

}  // namespace kiln::tok
