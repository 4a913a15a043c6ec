// token_text; see token_text.h. Specials are told apart by their strings, so a tokenizer without
// the tool tokens works too; an id past the tokenizer (a model's padded vocabulary) shows nothing.
#include "engine/token_text.h"

#include "tokenizer/tokenizer.h"

namespace kiln::engine {

std::string token_text(const tok::Tokenizer& tok, int64_t id) {
  if (id < 0 || id >= static_cast<int64_t>(tok.vocab_size())) return "";
  std::string s = tok.decode_token(static_cast<uint32_t>(id));
  if (id < static_cast<int64_t>(tok.bos_id())) return s;
  if (s == "<|python_start|>") return "[python: ";
  if (s == "<|output_start|>") return "[= ";
  if (s == "<|python_end|>" || s == "<|output_end|>") return "] ";
  return "";  // other specials
}

}  // namespace kiln::engine
