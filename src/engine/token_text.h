// What a generated token shows to a reader (./chat's terminal, ./serve's replies): its text bytes;
// the calculator's tool tokens as "[python: " ... "] " and "[= " ... "] "; other specials nothing.
// One place, so that the terminal and the API show a tool call the same way.
#pragma once
#include <cstdint>
#include <string>

namespace kiln::tok {
class Tokenizer;
}

namespace kiln::engine {

std::string token_text(const tok::Tokenizer& tok, int64_t id);

}  // namespace kiln::engine
