// The logprobs objects of OpenAI's replies. Completions (the legacy shape lm-evaluation-harness
// parses): {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}, with
// echo the prompt's tokens first (the first one's logprob and alternatives null). Chat:
// {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]}.
// A token that is not valid UTF-8 on its own (a piece of a character) is named "bytes:\xNN..." as
// OpenAI does; text_offset counts characters (a partial character's lead byte counts as one) into
// the prompt tokens' text followed by the completion's.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/logprobs.h"

namespace kiln::tok {
class Tokenizer;
}

namespace kiln::serve {

// A token's raw bytes (specials by name) and its display string.
std::string token_bytes(const tok::Tokenizer& tok, int64_t id);
std::string token_string(const tok::Tokenizer& tok, int64_t id);

// `prompt_lp` holds prompt tokens 1.. (empty without echo); `gen` the generated tokens'.
nlohmann::json completion_logprobs(const tok::Tokenizer& tok, const std::vector<int64_t>& prompt, bool echo,
                                   const std::vector<engine::TokenLogprob>& prompt_lp,
                                   const std::vector<engine::TokenLogprob>& gen);
// `count`: how many of `gen` belong to the reply (the stop token's entry is left out).
nlohmann::json chat_logprobs(const tok::Tokenizer& tok, const std::vector<engine::TokenLogprob>& gen, size_t count);

}  // namespace kiln::serve
