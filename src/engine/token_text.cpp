// token_text; see token_text.h. The special ids are looked up by name on every call: a handful
// of string compares, nothing next to a forward pass.
#include "engine/token_text.h"

#include "tokenizer/tokenizer.h"

namespace kiln::engine {

std::string token_text(const tok::Tokenizer& tok, int64_t id) {
  if (id < static_cast<int64_t>(tok.bos_id())) return tok.decode_token(static_cast<uint32_t>(id));
  if (id == tok.special_id("<|python_start|>")) return "[python: ";
  if (id == tok.special_id("<|output_start|>")) return "[= ";
  if (id == tok.special_id("<|python_end|>") || id == tok.special_id("<|output_end|>")) return "] ";
  return "";  // other specials
}

}  // namespace kiln::engine
