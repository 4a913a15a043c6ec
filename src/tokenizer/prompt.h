// How a plain-text prompt (./sample --start, /v1/completions) becomes ids, decided by the tokenizer
// rather than by each binary testing the model's architecture: a prompt starts the way the
// tokenizer's training documents did. nanochat's tokenizers start every document with <|bos|>;
// GPT-2's (one special, <|endoftext|>) is fed the text alone, as nanoGPT and transformers do, and
// only an empty prompt gets <|endoftext|>.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace kiln::tok {

// Whether a non-empty text prompt starts with tok.bos_id() (nanochat's <|bos|>: yes).
bool prompt_starts_with_bos(const Tokenizer& tok);

// The ids of a text prompt: [bos] + encode(text) when prompt_starts_with_bos or text is empty,
// else encode(text).
std::vector<int64_t> encode_prompt(const Tokenizer& tok, std::string_view text);

}  // namespace kiln::tok
