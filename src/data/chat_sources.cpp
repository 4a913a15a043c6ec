// Chat input formats for ./prepare --chat; see chat_sources.h. ARC and MMLU come from the task
// readers (data/tasks.h) so that a task is rendered the same way in training and in ./eval.
#include "data/chat_sources.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "data/tasks.h"

namespace kiln::data {
namespace fs = std::filesystem;

namespace {

const char* kFormats = "auto, messages, sharegpt, gsm8k, arc, mmlu";

// The format a record's keys announce, or Auto when they announce none.
ChatFormat format_of_record(const nlohmann::json& rec) {
  if (!rec.is_object()) return ChatFormat::Auto;
  if (rec.contains("messages")) return ChatFormat::Messages;
  if (rec.contains("conversations")) return ChatFormat::ShareGpt;
  if (rec.contains("question") && rec.contains("choices") && rec.contains("answerKey")) return ChatFormat::Arc;
  if (rec.contains("question") && rec.contains("answer")) return ChatFormat::Gsm8k;
  return ChatFormat::Auto;
}

std::string ext_of(const std::string& path) { return fs::path(path).extension().string(); }

}  // namespace

ChatFormat chat_format_from_name(const std::string& n) {
  if (n == "auto") return ChatFormat::Auto;
  if (n == "messages") return ChatFormat::Messages;
  if (n == "sharegpt") return ChatFormat::ShareGpt;
  if (n == "gsm8k") return ChatFormat::Gsm8k;
  if (n == "arc") return ChatFormat::Arc;
  if (n == "mmlu") return ChatFormat::Mmlu;
  throw Error("[prepare] --format " + n + " is not a chat format", std::string("use one of: ") + kFormats);
}

const char* chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::Auto: return "auto";
    case ChatFormat::Messages: return "messages";
    case ChatFormat::ShareGpt: return "sharegpt";
    case ChatFormat::Gsm8k: return "gsm8k";
    case ChatFormat::Arc: return "arc";
    case ChatFormat::Mmlu: return "mmlu";
  }
  return "?";
}

ChatFormat detect_chat_format(const std::string& path, ChatFormat requested) {
  if (requested != ChatFormat::Auto) return requested;
  const std::string ext = ext_of(path);
  if (ext == ".csv") return ChatFormat::Mmlu;
  nlohmann::json first;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("[prepare] cannot open " + path, "check the path");
  if (ext == ".json") {
    first = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (first.is_array() && !first.empty()) first = first[0];
  } else {
    std::string line;
    while (std::getline(in, line) && line.find_first_not_of(" \t\r") == std::string::npos) {}
    first = nlohmann::json::parse(line, nullptr, false);
  }
  const ChatFormat f = format_of_record(first);
  if (f == ChatFormat::Auto)
    throw Error("[prepare] cannot tell the conversation format of " + path +
                    " from its extension or first record (looked for messages / conversations / "
                    "question+answer / question+choices+answerKey)",
                std::string("give --format (") + kFormats + ")");
  return f;
}

tok::Conversation conversation_from_record(const nlohmann::json& rec, ChatFormat f, const std::string& where) {
  if (f != ChatFormat::ShareGpt) return tok::conversation_from_json(rec, where);  // messages / gsm8k
  auto bad = [&](const std::string& what) {
    return Error("[chat] " + where + ": " + what,
                 "ShareGPT records are {\"conversations\": [{\"from\": human|gpt|system, \"value\": \"...\"}, ...]}");
  };
  if (!rec.is_object() || !rec.contains("conversations") || !rec["conversations"].is_array())
    throw bad("no 'conversations' list");
  tok::Conversation c;
  for (const auto& m : rec["conversations"]) {
    if (!m.is_object() || !m.contains("from") || !m["from"].is_string() || !m.contains("value") ||
        !m["value"].is_string())
      throw bad("a turn lacks a string 'from' or 'value'");
    const std::string from = m["from"].get<std::string>();
    std::string role = from == "human" || from == "user"        ? "user"
                       : from == "gpt" || from == "assistant"   ? "assistant"
                       : from == "system"                        ? "system"
                                                                 : "";
    if (role.empty()) throw bad("unknown speaker 'from': \"" + from + "\" (expected human, gpt or system)");
    c.messages.push_back({role, m["value"].get<std::string>()});
  }
  return c;
}

bool chat_file_is_whole(const std::string& path, ChatFormat f) {
  return f == ChatFormat::Arc || f == ChatFormat::Mmlu || ext_of(path) == ".json";
}

std::vector<LocatedConversation> read_chat_file(const std::string& path, ChatFormat f) {
  std::vector<LocatedConversation> out;
  if (f == ChatFormat::Arc || f == ChatFormat::Mmlu) {
    for (auto& ex : read_task(f == ChatFormat::Arc ? TaskKind::Arc : TaskKind::Mmlu, path))
      out.push_back({std::move(ex.conv), ex.id, ""});
    return out;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("[prepare] cannot open " + path, "check the path");
  nlohmann::json all = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!all.is_array())
    throw Error("[prepare] " + path + ": a .json conversation file must hold one JSON array of records",
                "or write one record per line to a .jsonl file");
  for (size_t i = 0; i < all.size(); ++i) {
    LocatedConversation lc;
    lc.where = path + ":record " + std::to_string(i + 1);
    try {
      lc.conv = conversation_from_record(all[i], f, lc.where);
    } catch (const Error& e) {
      lc.error = e.what();
    }
    out.push_back(std::move(lc));
  }
  return out;
}

}  // namespace kiln::data
