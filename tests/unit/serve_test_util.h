// What the serve unit tests share: a byte-level tokenizer (256 bytes + the chat specials) and
// request limits with a 64-token context.
#pragma once
#include "serve/request.h"
#include "tokenizer/tokenizer.h"

namespace kiln::serve::test {

inline const tok::Tokenizer& bytes_tok() {
  static auto t = tok::Tokenizer::from_merges({});
  return t;
}

inline Limits limits() {
  Limits L;
  L.context = 64;
  L.max_n = 4;
  return L;
}

}  // namespace kiln::serve::test
