// The chat template (nanochat §4): a conversation becomes token ids plus a loss mask, where
// mask[i] = 1 means ids[i] is trained as a target. Assistant text, python calls and
// <|assistant_end|> are trained; <|bos|>, user turns, <|assistant_start|> and tool outputs are not.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/tokenizer.h"

namespace kiln::tok {

enum class PartType { Text, Python, PythonOutput };

struct Part {
  PartType type = PartType::Text;
  std::string text;
};

struct Message {
  std::string role;                                    // "system", "user" or "assistant"
  std::variant<std::string, std::vector<Part>> content;  // parts only for the assistant
};

struct Conversation {
  std::vector<Message> messages;
};

struct Rendered {
  std::vector<uint32_t> ids;
  std::vector<uint8_t> mask;
};

// Renders by the rules above, truncated to max_len tokens (0 = no limit). A leading system
// message is merged into the first user message ("system\n\nuser"); then roles must alternate
// user, assistant, user, ... A violation throws kiln::Error naming the message.
Rendered render_conversation(const Tokenizer& tok, const Conversation& conv, size_t max_len = 2048);

// The prompt for generation: the conversation without its final assistant message (if the last
// message is the assistant's), ending in <|assistant_start|>.
std::vector<uint32_t> render_for_completion(const Tokenizer& tok, const Conversation& conv);

// A conversation held as ids (./chat keeps the model's own reply ids, as nanochat's chat_cli does)
// continued by one user turn, by the rules above: history (empty: <|bos|>) + <|user_start|> text
// <|user_end|> <|assistant_start|>, the prompt for the next reply.
std::vector<uint32_t> continue_for_completion(const Tokenizer& tok, std::vector<uint32_t> history,
                                              const std::string& user_text);

// A JSON record as a conversation: {"messages": [{"role", "content": str | [{"type", "text"}]}]}
// or GSM8K's {"question", "answer"}, whose <<expr=result>> annotations become python /
// python_output parts. `where` (e.g. "file:line") prefixes error messages.
Conversation conversation_from_json(const nlohmann::json& rec, const std::string& where);
// GSM8K's answer text as assistant parts: text, then python(expr) + python_output(result) per <<..>>.
std::vector<Part> gsm8k_answer_parts(const std::string& answer);

}  // namespace kiln::tok
