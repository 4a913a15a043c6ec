// Hugging Face `tokenizers`' tokenizer.json <-> a kiln Tokenizer. kiln's BPE is byte-level with its
// own split pattern, which tokenizer.json spells as a Split pre-tokenizer (the pattern, Isolated)
// followed by ByteLevel without its own regex; the vocabulary and merges use GPT-2's byte alphabet
// (gpt2_files.h) and the specials are added tokens. transformers' AutoTokenizer and the tokenizers
// package load what hf_tokenizer_json writes and encode to kiln's ids.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "tokenizer/tokenizer.h"

namespace kiln::tok {

// The tokenizer.json document for `tok` (no normalizer, no post-processor: encoding text gives
// exactly tok.encode's ids, without <|bos|>; the chat template adds it).
nlohmann::ordered_json hf_tokenizer_json(const Tokenizer& tok);

// Reads a tokenizer.json written that way (or by nanochat / transformers for a byte-level BPE
// whose ids follow kiln's layout). Throws kiln::Error naming the file and the key it cannot
// take: another model type, a normalizer, a pre-tokenizer other than [Split, ByteLevel] or
// ByteLevel alone (GPT-2's pattern), ids out of kiln's layout.
Tokenizer read_hf_tokenizer_json(const std::string& path);

}  // namespace kiln::tok
