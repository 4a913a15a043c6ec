// OpenAI shapes; see openai_json.h. Field names and values follow OpenAI's API reference
// (object "chat.completion" / "chat.completion.chunk" / "text_completion", finish_reason,
// usage.{prompt,completion,total}_tokens); a null field is written as null, as OpenAI does.
#include "serve/openai_json.h"

#include "serve/request.h"

namespace kiln::serve {

using nlohmann::json;

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {
json head(const ReplyHead& h, const char* chat_object, const char* text_object) {
  return {{"id", h.id}, {"object", h.chat ? chat_object : text_object}, {"created", h.created}, {"model", h.model}};
}
}  // namespace

json completion_json(const ReplyHead& h, const std::vector<ChoiceText>& choices, int64_t prompt_tokens,
                     int64_t completion_tokens) {
  json j = head(h, "chat.completion", "text_completion");
  j["choices"] = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    json c = {{"index", i}, {"finish_reason", choices[i].finish}, {"logprobs", choices[i].logprobs}};
    if (h.chat)
      c["message"] = {{"role", "assistant"}, {"content", choices[i].text}};
    else
      c["text"] = choices[i].text;
    j["choices"].push_back(std::move(c));
  }
  j["usage"] = usage_json(prompt_tokens, completion_tokens);
  return j;
}

json chunk_json(const ReplyHead& h, int64_t index, const std::string& text, bool first, const std::string& finish) {
  json j = head(h, "chat.completion.chunk", "text_completion");
  json c = {{"index", index}, {"finish_reason", finish.empty() ? json(nullptr) : json(finish)}, {"logprobs", nullptr}};
  if (h.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (finish.empty()) delta["content"] = text;
    c["delta"] = std::move(delta);
  } else {
    c["text"] = text;
  }
  j["choices"] = json::array({std::move(c)});
  return j;
}

json usage_chunk_json(const ReplyHead& h, int64_t prompt_tokens, int64_t completion_tokens) {
  json j = head(h, "chat.completion.chunk", "text_completion");
  j["choices"] = json::array();
  j["usage"] = usage_json(prompt_tokens, completion_tokens);
  return j;
}

json models_json(const std::string& model, int64_t created, int64_t context) {
  return {{"object", "list"},
          {"data", json::array({{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "kiln"},
                                 {"context_length", context}}})}};
}

json error_json(const ApiError& e) {
  return {{"error",
           {{"message", e.what()},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

}  // namespace kiln::serve
