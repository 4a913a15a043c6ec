// Chat rendering and conversation JSON parsing. Rendering appends (ids, mask) spans turn by turn,
// so each rule of nanochat §4 is one line below; truncation happens once at the end.
#include "tokenizer/chat.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace kiln::tok {

namespace {
struct Out {
  Rendered r;
  void add(const std::vector<uint32_t>& ids, uint8_t m) {
    r.ids.insert(r.ids.end(), ids.begin(), ids.end());
    r.mask.insert(r.mask.end(), ids.size(), m);
  }
  void add(uint32_t id, uint8_t m) { r.ids.push_back(id); r.mask.push_back(m); }
};

const std::string& text_of(const Message& m, size_t i) {
  if (!std::holds_alternative<std::string>(m.content))
    throw Error("[chat] message " + std::to_string(i) + " (" + m.role + ") has content parts",
                "only assistant messages may hold parts (text/python/python_output); give user text as a string");
  return std::get<std::string>(m.content);
}

// <|user_start|> text <|user_end|>: the user turn of render_conversation and continue_for_completion.
void add_user_turn(Out& o, const Tokenizer& tok, const std::string& text) {
  o.add(tok.special_id("<|user_start|>"), 0);
  o.add(tok.encode(text), 0);
  o.add(tok.special_id("<|user_end|>"), 0);
}
}  // namespace

Rendered render_conversation(const Tokenizer& tok, const Conversation& conv, size_t max_len) {
  std::vector<Message> msgs = conv.messages;
  if (!msgs.empty() && msgs[0].role == "system") {
    if (msgs.size() < 2 || msgs[1].role != "user")
      throw Error("[chat] a system message must be followed by a user message", "put the user turn right after it");
    msgs[1].content = text_of(msgs[0], 0) + "\n\n" + text_of(msgs[1], 1);
    msgs.erase(msgs.begin());
  }
  if (msgs.empty()) throw Error("[chat] the conversation has no messages", "give at least one user message");
  Out o;
  o.add(tok.bos_id(), 0);
  // A tokenizer without chat tokens is refused up front, naming the first one it lacks.
  for (const char* name : {"<|user_start|>", "<|user_end|>"}) (void)tok.special_id(name);
  const uint32_t as = tok.special_id("<|assistant_start|>"), ae = tok.special_id("<|assistant_end|>");
  const uint32_t ps = tok.special_id("<|python_start|>"), pe = tok.special_id("<|python_end|>");
  const uint32_t os = tok.special_id("<|output_start|>"), oe = tok.special_id("<|output_end|>");
  for (size_t i = 0; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    const char* want = i % 2 == 0 ? "user" : "assistant";
    if (m.role != want)
      throw Error("[chat] message " + std::to_string(i) + " has role '" + m.role + "' where '" + want + "' was expected",
                  "roles must alternate user, assistant, user, ... (an optional system message first)");
    if (i % 2 == 0) {
      add_user_turn(o, tok, text_of(m, i));
      continue;
    }
    o.add(as, 0);
    if (auto* s = std::get_if<std::string>(&m.content)) {
      o.add(tok.encode(*s), 1);
    } else {
      for (const auto& p : std::get<std::vector<Part>>(m.content)) {
        switch (p.type) {
          case PartType::Text: o.add(tok.encode(p.text), 1); break;
          case PartType::Python:  // the model writes the call: trained
            o.add(ps, 1); o.add(tok.encode(p.text), 1); o.add(pe, 1); break;
          case PartType::PythonOutput:  // the tool writes the output at test time: not trained
            o.add(os, 0); o.add(tok.encode(p.text), 0); o.add(oe, 0); break;
        }
      }
    }
    o.add(ae, 1);
  }
  if (max_len > 0 && o.r.ids.size() > max_len) {
    o.r.ids.resize(max_len);
    o.r.mask.resize(max_len);
  }
  return std::move(o.r);
}

std::vector<uint32_t> render_for_completion(const Tokenizer& tok, const Conversation& conv) {
  Conversation c = conv;
  if (!c.messages.empty() && c.messages.back().role == "assistant") c.messages.pop_back();
  auto r = render_conversation(tok, c, 0);
  r.ids.push_back(tok.special_id("<|assistant_start|>"));
  return r.ids;
}

std::vector<uint32_t> continue_for_completion(const Tokenizer& tok, std::vector<uint32_t> history,
                                              const std::string& user_text) {
  Out o;
  o.r.ids = std::move(history);
  if (o.r.ids.empty()) o.r.ids.push_back(tok.bos_id());
  add_user_turn(o, tok, user_text);
  o.r.ids.push_back(tok.special_id("<|assistant_start|>"));
  return std::move(o.r.ids);
}

std::vector<Part> gsm8k_answer_parts(const std::string& answer) {
  // Same split as nanochat's tasks/gsm8k.py: <<[^>]+>> is a call; expr and result split at the
  // last '='; the text between calls is kept as text parts (empty ones dropped: they add no ids).
  std::vector<Part> parts;
  size_t pos = 0;
  while (true) {
    // The next match of <<[^>]+>>: "<<", at least one non-'>', then the first '>' must start ">>".
    size_t b = pos, gt = std::string::npos;
    for (; (b = answer.find("<<", b)) != std::string::npos; ++b) {
      gt = answer.find('>', b + 2);
      if (gt != std::string::npos && gt > b + 2 && gt + 1 < answer.size() && answer[gt + 1] == '>') break;
    }
    if (b == std::string::npos) {
      if (pos < answer.size()) parts.push_back({PartType::Text, answer.substr(pos)});
      return parts;
    }
    if (b > pos) parts.push_back({PartType::Text, answer.substr(pos, b - pos)});
    std::string inner = answer.substr(b + 2, gt - b - 2);
    size_t eq = inner.rfind('=');
    parts.push_back({PartType::Python, eq == std::string::npos ? inner : inner.substr(0, eq)});
    parts.push_back({PartType::PythonOutput, eq == std::string::npos ? "" : inner.substr(eq + 1)});
    pos = gt + 2;
  }
}

Conversation conversation_from_json(const nlohmann::json& rec, const std::string& where) {
  Conversation c;
  auto bad = [&](const std::string& what) {
    return Error("[chat] " + where + ": " + what,
                 "records are {\"messages\": [{\"role\", \"content\"}, ...]} or GSM8K {\"question\", \"answer\"}");
  };
  if (!rec.is_object()) throw bad("the record is not a JSON object");
  if (rec.contains("messages")) {
    if (!rec["messages"].is_array()) throw bad("'messages' is not a list");
    for (const auto& m : rec["messages"]) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content"))
        throw bad("a message lacks 'role' or 'content'");
      Message msg{m["role"].get<std::string>(), std::string()};
      const auto& content = m["content"];
      if (content.is_string()) {
        msg.content = content.get<std::string>();
      } else if (content.is_array()) {
        std::vector<Part> parts;
        for (const auto& p : content) {
          if (!p.is_object() || !p.contains("type") || !p.contains("text") || !p["text"].is_string())
            throw bad("a content part lacks 'type' or 'text'");
          std::string type = p["type"].is_string() ? p["type"].get<std::string>() : "";
          PartType t = type == "text" ? PartType::Text : type == "python" ? PartType::Python
                     : type == "python_output" ? PartType::PythonOutput : throw bad("unknown part type '" + type + "'");
          parts.push_back({t, p["text"].get<std::string>()});
        }
        msg.content = std::move(parts);
      } else {
        throw bad("'content' is neither a string nor a list of parts");
      }
      c.messages.push_back(std::move(msg));
    }
    return c;
  }
  if (rec.contains("question") && rec.contains("answer") && rec["question"].is_string() && rec["answer"].is_string()) {
    c.messages.push_back({"user", rec["question"].get<std::string>()});
    c.messages.push_back({"assistant", gsm8k_answer_parts(rec["answer"].get<std::string>())});
    return c;
  }
  throw bad("neither 'messages' nor 'question'/'answer' found");
}

}  // namespace kiln::tok
