// OpenAI's response shapes: chat.completion / text_completion objects, their streamed chunks, the
// usage record, /v1/models and the error body. Text is dumped with invalid UTF-8 replaced (a model
// may sample bytes that never form a character), never thrown on.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kiln::tok {
class Tokenizer;
}

namespace kiln::serve {

struct ApiError;  // serve/request.h

// What every response of one request shares.
struct ReplyHead {
  bool chat = true;
  std::string id;  // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;
  std::string model;
};

struct ChoiceText {
  std::string text;
  std::string finish;  // "stop" | "length"
  nlohmann::json logprobs;  // null unless asked (serve/logprobs_json.h)
};

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);
nlohmann::json completion_json(const ReplyHead& h, const std::vector<ChoiceText>& choices, int64_t prompt_tokens,
                               int64_t completion_tokens);
// One streamed chunk for choice `index`: `first` carries the assistant role (chat), `finish`
// (non-empty) ends the choice with an empty delta.
nlohmann::json chunk_json(const ReplyHead& h, int64_t index, const std::string& text, bool first,
                          const std::string& finish);
// The last chunk with stream_options.include_usage: no choices, the usage.
nlohmann::json usage_chunk_json(const ReplyHead& h, int64_t prompt_tokens, int64_t completion_tokens);
nlohmann::json models_json(const std::string& model, int64_t created, int64_t context);
nlohmann::json error_json(const ApiError& e);
// GET /tokenizer_info (what lm-eval's remote tokenizer reads): bos/eos token names, the vocabulary
// size, the context, and the chat template (Jinja; null for a tokenizer without chat tokens).
nlohmann::json tokenizer_info_json(const tok::Tokenizer& tok, int64_t context);

std::string dump(const nlohmann::json& j);
// An SSE event: "data: <json>\n\n".
std::string sse(const nlohmann::json& j);

}  // namespace kiln::serve
