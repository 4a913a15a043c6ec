// ./prepare --chat's input formats: which reader a file needs and how its records become
// conversations. JSONL formats are parsed record by record on worker threads; whole-file formats
// (a JSON array of records, ARC and MMLU through data/tasks.h) yield every record at once.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/chat.h"

namespace kiln::data {

// messages: {"messages": [{"role", "content"}]} (OpenAI); sharegpt: {"conversations": [{"from",
// "value"}]}; gsm8k: {"question", "answer"}; arc: ARC JSONL; mmlu: MMLU CSV (header, 0-based answer).
enum class ChatFormat { Auto, Messages, ShareGpt, Gsm8k, Arc, Mmlu };

// "auto" | "messages" | "sharegpt" | "gsm8k" | "arc" | "mmlu"; throws kiln::Error naming the value.
ChatFormat chat_format_from_name(const std::string& name);
const char* chat_format_name(ChatFormat f);

// The format of one file: `requested` unless Auto, else from the extension (.csv: mmlu) or the
// keys of its first record. Throws kiln::Error naming the file when it cannot tell.
ChatFormat detect_chat_format(const std::string& path, ChatFormat requested);

// One JSON record (messages, sharegpt or gsm8k) as a conversation; throws kiln::Error naming `where`.
// ShareGPT roles: human/user -> user, gpt/assistant -> assistant, system -> system.
tok::Conversation conversation_from_record(const nlohmann::json& rec, ChatFormat f, const std::string& where);

// True when the file is read whole (a .json array, ARC, MMLU) rather than line by line.
bool chat_file_is_whole(const std::string& path, ChatFormat f);

struct LocatedConversation {
  tok::Conversation conv;
  std::string where;  // "file:line" or "file:record N"
  std::string error;  // non-empty: the record is malformed (the caller fails or counts it)
};
// Every record of a whole-file format, in file order.
std::vector<LocatedConversation> read_chat_file(const std::string& path, ChatFormat f);

}  // namespace kiln::data
