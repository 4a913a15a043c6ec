// OpenAI shapes; see openai_json.h. Field names and values follow OpenAI's API reference
// (object "chat.completion" / "chat.completion.chunk" / "text_completion", finish_reason,
// usage.{prompt,completion,total}_tokens); a null field is written as null, as OpenAI does.
#include "serve/openai_json.h"

#include "serve/request.h"
#include "tokenizer/tokenizer.h"

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

// nanochat's rendering (tokenizer/chat.h): <|bos|>, a system message merged into the first user
// turn (system + "\n\n" + user), then each turn between its role's tokens; with
// add_generation_prompt the reply's <|assistant_start|>.
constexpr const char* kChatTemplate =
    "{%- set sys = messages[0]['role'] == 'system' -%}<|bos|>"
    "{%- for m in (messages[1:] if sys else messages) -%}"
    "{%- if m['role'] == 'user' -%}<|user_start|>{{ (messages[0]['content'] + '\\n\\n') if (sys and loop.first) else '' }}"
    "{{ m['content'] }}<|user_end|>"
    "{%- else -%}<|assistant_start|>{{ m['content'] }}<|assistant_end|>{%- endif -%}"
    "{%- endfor -%}{%- if add_generation_prompt -%}<|assistant_start|>{%- endif -%}";

json tokenizer_info_json(const tok::Tokenizer& tok, int64_t context) {
  const std::string bos = tok.decode_token(tok.bos_id());
  const bool chat = tok.find_special("<|user_start|>") && tok.find_special("<|assistant_start|>");
  // A base model's documents are separated by <|bos|> (GPT-2's <|endoftext|>): it is the end of text.
  return {{"bos_token", bos},
          {"eos_token", bos},
          {"pad_token", nullptr},
          {"vocab_size", tok.vocab_size()},
          {"max_model_len", context},
          {"model_max_length", context},
          {"chat_template", chat ? json(kChatTemplate) : json(nullptr)}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

}  // namespace kiln::serve
