// Text prompts; see prompt.h.
#include "tokenizer/prompt.h"

namespace kiln::tok {

bool prompt_starts_with_bos(const Tokenizer& tok) { return tok.specials().front() == "<|bos|>"; }

std::vector<int64_t> encode_prompt(const Tokenizer& tok, std::string_view text) {
  std::vector<int64_t> ids;
  if (prompt_starts_with_bos(tok) || text.empty()) ids.push_back(tok.bos_id());
  for (uint32_t id : tok.encode(text)) ids.push_back(id);
  return ids;
}

}  // namespace kiln::tok
