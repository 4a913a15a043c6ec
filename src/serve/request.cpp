// Request parsing; see request.h. The limits are nanochat's web server's (500 messages, 8000
// characters each, 32000 in all, temperature 0..2, top_k 0..200) plus OpenAI's (top_p in (0, 1],
// up to 4 stop strings); prompt + max_tokens must fit the model's positions.
#include "serve/request.h"

#include <nlohmann/json.hpp>

#include <random>

#include "core/error.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace kiln::serve {

namespace {
using nlohmann::json;

ApiError bad(const std::string& msg, const std::string& param, const std::string& code = "invalid_value") {
  return ApiError(400, msg, code, param);
}

size_t utf8_chars(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The deepest nesting of arrays and objects in `body` (brackets inside strings do not count). It
// runs before the parser: nlohmann's parser is iterative, but copying, comparing or dumping a
// value recurses once per level, so a body nested 200,000 deep would overflow a worker's stack
// later. An OpenAI request needs 4 levels ({"messages": [{"content": [{...}]}]}).
size_t nesting_depth(const std::string& body) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

json parse_body(const std::string& body) {
  if (const size_t d = nesting_depth(body); d > kMaxJsonDepth)
    throw ApiError(400, "the request body nests arrays/objects " + std::to_string(d) + " levels deep; at most " +
                            std::to_string(kMaxJsonDepth) + " are allowed", "invalid_json");
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    throw ApiError(400, "the request body is not valid JSON", "invalid_json");
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object", "invalid_json");
  return j;
}

bool has(const json& j, const char* key) { return j.contains(key) && !j.at(key).is_null(); }

double number(const json& j, const char* key, double dflt, double lo, double hi, bool lo_open = false) {
  if (!has(j, key)) return dflt;
  const json& v = j.at(key);
  if (!v.is_number()) throw bad(std::string("'") + key + "' must be a number", key, "invalid_type");
  const double x = v.get<double>();
  if (!(lo_open ? x > lo : x >= lo) || !(x <= hi))
    throw bad(std::string("'") + key + "' = " + v.dump() + " is out of range: it must be in " + (lo_open ? "(" : "[") +
                  json(lo).dump() + ", " + json(hi).dump() + "]",
              key);
  return x;
}

int64_t integer(const json& j, const char* key, int64_t dflt, int64_t lo, int64_t hi) {
  if (!has(j, key)) return dflt;
  const json& v = j.at(key);
  if (!v.is_number_integer()) throw bad(std::string("'") + key + "' must be an integer", key, "invalid_type");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    throw bad(std::string("'") + key + "' = " + v.dump() + " is out of range [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "]", key);
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    throw bad(std::string("'") + key + "' = " + v.dump() + " is out of range [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "]", key);
  return x;
}

// Fields common to both endpoints; the prompt is already in job.prompt.
void common(const json& j, const Limits& L, Job& job) {
  if (has(j, "model") && !j.at("model").is_string()) throw bad("'model' must be a string", "model", "invalid_type");
  if (has(j, "stream") && !j.at("stream").is_boolean()) throw bad("'stream' must be true or false", "stream", "invalid_type");
  job.stream = has(j, "stream") && j.at("stream").get<bool>();
  if (has(j, "stream_options")) {
    const json& so = j.at("stream_options");
    if (!so.is_object()) throw bad("'stream_options' must be an object", "stream_options", "invalid_type");
    if (!job.stream) throw bad("'stream_options' is only allowed with stream: true", "stream_options");
    if (has(so, "include_usage")) {
      if (!so.at("include_usage").is_boolean())
        throw bad("'stream_options.include_usage' must be true or false", "stream_options", "invalid_type");
      job.include_usage = so.at("include_usage").get<bool>();
    }
  }
  auto& o = job.options;
  o.temperature = number(j, "temperature", 1.0, 0.0, 2.0);
  o.top_p = number(j, "top_p", 1.0, 0.0, 1.0, /*lo_open=*/true);
  o.top_k = integer(j, "top_k", 0, 0, 200);
  job.n = integer(j, "n", 1, 1, L.max_n);
  const int64_t rows = static_cast<int64_t>(job.prompts.size()) * job.n;
  if (rows > L.max_n)
    throw bad(std::to_string(job.prompts.size()) + " prompts x n = " + std::to_string(job.n) + " make " +
                  std::to_string(rows) + " choices; at most " + std::to_string(L.max_n) +
                  " are allowed per request (the server's slots)", "prompt");
  if (has(j, "seed")) {
    if (!j.at("seed").is_number_integer()) throw bad("'seed' must be an integer", "seed", "invalid_type");
    o.seed = j.at("seed").is_number_unsigned() ? j.at("seed").get<uint64_t>()
                                               : static_cast<uint64_t>(j.at("seed").get<int64_t>());
  } else {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    o.seed = rng();
  }
  if (has(j, "stop")) {
    const json& s = j.at("stop");
    // Pointers, not copies: copying a json value recurses once per level of nesting.
    std::vector<const json*> items;
    if (s.is_array())
      for (const json& x : s) items.push_back(&x);
    else
      items.push_back(&s);
    if (items.size() > L.max_stops)
      throw bad("'stop' has " + std::to_string(items.size()) + " strings; at most " + std::to_string(L.max_stops) +
                    " are allowed", "stop");
    for (const json* xp : items) {
      const json& x = *xp;
      if (!x.is_string()) throw bad("'stop' must be a string or a list of strings", "stop", "invalid_type");
      const auto& str = x.get_ref<const std::string&>();
      if (str.empty() || utf8_chars(str) > L.max_stop_chars)
        throw bad("a stop string must have 1 to " + std::to_string(L.max_stop_chars) + " characters", "stop");
      job.stop.push_back(str);
    }
  }
  // Every prompt's tokens + max_tokens must fit the model's positions; the longest prompt decides.
  int64_t prompt = 0;
  for (const auto& p : job.prompts) prompt = std::max<int64_t>(prompt, static_cast<int64_t>(p.size()));
  const char* key = has(j, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  // max_tokens 0 with echo scores the prompt and samples nothing (lm-eval's log-likelihoods).
  if (job.echo && has(j, key) && j.at(key).is_number_integer() && j.at(key).get<int64_t>() == 0) {
    job.generate = false;
    if (prompt > L.context)
      throw ApiError(400, "the prompt is " + std::to_string(prompt) + " tokens; the model's context is " +
                              std::to_string(L.context) + " tokens", "context_length_exceeded", "prompt");
    return;
  }
  const int64_t room = L.context - prompt;
  if (room < 1)
    throw ApiError(400, "the prompt is " + std::to_string(prompt) + " tokens; the model's context is " +
                            std::to_string(L.context) + " tokens, leaving no room for a reply",
                   "context_length_exceeded", job.chat ? "messages" : "prompt");
  if (has(j, key)) {
    o.max_new_tokens = integer(j, key, 0, 1, L.max_tokens);
    if (o.max_new_tokens > room)
      throw ApiError(400, "the prompt (" + std::to_string(prompt) + " tokens) + " + key + " (" +
                              std::to_string(o.max_new_tokens) + ") exceeds the model's context of " +
                              std::to_string(L.context) + " tokens",
                     "context_length_exceeded", key);
  } else {
    o.max_new_tokens = std::min(L.default_max_tokens, room);
  }
}

std::string content_text(const json& c, size_t i) {
  const std::string where = "messages[" + std::to_string(i) + "].content";
  if (c.is_string()) return c.get<std::string>();
  if (c.is_array()) {  // [{"type": "text", "text": "..."}]
    std::string out;
    for (const json& part : c) {
      // json == "text" is false for a non-string type (value("type", "") would throw on one).
      if (!part.is_object() || !part.contains("type") || part.at("type") != "text" || !part.contains("text") ||
          !part.at("text").is_string())
        throw bad(where + ": only text parts {\"type\": \"text\", \"text\": ...} are supported", "messages", "invalid_type");
      out += part.at("text").get<std::string>();
    }
    return out;
  }
  throw bad(where + " must be a string or a list of text parts", "messages", "invalid_type");
}
}  // namespace

Job parse_chat_request(const std::string& body, const tok::Tokenizer& tok, const Limits& L) {
  const json j = parse_body(body);
  // A base model's tokenizer (GPT-2's) has no chat template: say so, not "roles out of order".
  if (!tok.find_special("<|user_start|>") || !tok.find_special("<|assistant_start|>"))
    throw bad("this model's tokenizer has no chat tokens (a base model such as GPT-2): use /v1/completions",
              "messages", "chat_not_supported");
  if (!has(j, "messages") || !j.at("messages").is_array())
    throw bad("'messages' is required: a list of {\"role\", \"content\"}", "messages", "missing_required_parameter");
  const json& msgs = j.at("messages");
  if (msgs.empty()) throw bad("'messages' is empty: give at least one user message", "messages");
  if (msgs.size() > L.max_messages)
    throw bad("'messages' has " + std::to_string(msgs.size()) + " messages; at most " + std::to_string(L.max_messages) +
                  " are allowed", "messages");
  tok::Conversation conv;
  size_t total = 0;
  for (size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    if (!m.is_object() || !m.contains("role") || !m.at("role").is_string())
      throw bad("messages[" + std::to_string(i) + "] must be an object with a string 'role'", "messages", "invalid_type");
    const std::string role = m.at("role").get<std::string>();
    if (role != "system" && role != "user" && role != "assistant")
      throw bad("messages[" + std::to_string(i) + "] has the unknown role '" + role +
                    "': the roles are system, user and assistant", "messages", "invalid_role");
    if (!m.contains("content")) throw bad("messages[" + std::to_string(i) + "] has no content", "messages", "invalid_type");
    std::string text = content_text(m.at("content"), i);
    const size_t chars = utf8_chars(text);
    if (chars > L.max_message_chars)
      throw bad("messages[" + std::to_string(i) + "] has " + std::to_string(chars) + " characters; at most " +
                    std::to_string(L.max_message_chars) + " are allowed", "messages", "string_above_max_length");
    total += chars;
    conv.messages.push_back({role, std::move(text)});
  }
  if (total > L.max_total_chars)
    throw bad("the messages have " + std::to_string(total) + " characters in all; at most " +
                  std::to_string(L.max_total_chars) + " are allowed", "messages", "string_above_max_length");
  if (conv.messages.back().role != "user")
    throw bad("the last message must be the user's (the reply continues the conversation)", "messages", "invalid_role");
  Job job;
  job.prompts.emplace_back();
  try {
    for (uint32_t id : tok::render_for_completion(tok, conv)) job.prompts[0].push_back(id);
  } catch (const Error& e) {  // roles out of order
    throw bad(e.what(), "messages", "invalid_role");
  }
  if (has(j, "logprobs") && !j.at("logprobs").is_boolean())
    throw bad("'logprobs' must be true or false (the alternatives' count is 'top_logprobs')", "logprobs", "invalid_type");
  const bool logprobs = has(j, "logprobs") && j.at("logprobs").get<bool>();
  if (has(j, "top_logprobs") && !logprobs)
    throw bad("'top_logprobs' needs 'logprobs': true", "top_logprobs");
  if (logprobs) job.options.logprobs = integer(j, "top_logprobs", 0, 0, kMaxLogprobs);
  common(j, L, job);
  if (logprobs && job.stream)
    throw bad("'logprobs' is not supported with stream: true; ask without streaming", "logprobs");
  return job;
}

namespace {
// One prompt of token ids: integers in the tokenizer's vocabulary, at most the model's context.
std::vector<int64_t> id_prompt(const json& p, const tok::Tokenizer& tok, const Limits& L, const std::string& where) {
  if (p.empty()) throw bad(where + " is an empty list of token ids", "prompt");
  if (static_cast<int64_t>(p.size()) > L.context)
    throw ApiError(400, where + " has " + std::to_string(p.size()) + " tokens; the model's context is " +
                            std::to_string(L.context) + " tokens", "context_length_exceeded", "prompt");
  std::vector<int64_t> ids;
  ids.reserve(p.size());
  const int64_t vocab = tok.vocab_size();
  for (const json& x : p) {
    if (!x.is_number_integer())
      throw bad(where + " must be a list of integer token ids", "prompt", "invalid_type");
    const bool ok = x.is_number_unsigned() ? x.get<uint64_t>() < static_cast<uint64_t>(vocab)
                                           : x.get<int64_t>() >= 0 && x.get<int64_t>() < vocab;
    if (!ok)
      throw bad(where + " has the token id " + x.dump() + ", outside the vocabulary [0, " + std::to_string(vocab) + ")",
                "prompt");
    ids.push_back(x.get<int64_t>());
  }
  return ids;
}
}  // namespace

Job parse_completion_request(const std::string& body, const tok::Tokenizer& tok, const Limits& L) {
  const json j = parse_body(body);
  if (!has(j, "prompt")) throw bad("'prompt' is required", "prompt", "missing_required_parameter");
  const json& p = j.at("prompt");  // a reference: copying a json value recurses per level of nesting
  const char* forms = "'prompt' must be a string, a list of strings, a list of token ids or a list of token-id lists";
  Job job;
  job.chat = false;
  size_t chars = 0;
  auto text_prompt = [&](const std::string& text) {
    chars += utf8_chars(text);
    if (chars > L.max_total_chars)
      throw bad("the prompt text has more than " + std::to_string(L.max_total_chars) + " characters in all; at most " +
                    std::to_string(L.max_total_chars) + " are allowed", "prompt", "string_above_max_length");
    std::vector<int64_t> ids;
    if (L.bos_prefix || text.empty()) ids.push_back(tok.bos_id());
    for (uint32_t id : tok.encode(text)) ids.push_back(id);
    job.prompts.push_back(std::move(ids));
  };
  if (p.is_string()) {
    text_prompt(p.get_ref<const std::string&>());
  } else if (p.is_array() && !p.empty() && p[0].is_number()) {
    job.prompts.push_back(id_prompt(p, tok, L, "'prompt'"));  // token ids are fed as they are: no bos added
  } else if (p.is_array() && !p.empty()) {
    if (static_cast<int64_t>(p.size()) > L.max_n)
      throw bad("'prompt' lists " + std::to_string(p.size()) + " prompts; at most " + std::to_string(L.max_n) +
                    " are allowed per request (the server's slots)", "prompt");
    for (size_t i = 0; i < p.size(); ++i) {
      const std::string where = "prompt[" + std::to_string(i) + "]";
      if (p[i].is_string() && p[0].is_string()) text_prompt(p[i].get_ref<const std::string&>());
      else if (p[i].is_array() && p[0].is_array()) job.prompts.push_back(id_prompt(p[i], tok, L, "'" + where + "'"));
      else throw bad(std::string(forms) + " (" + where + " does not match the first item)", "prompt", "invalid_type");
    }
  } else {
    throw bad(std::string(forms) + (p.is_array() ? " (it is an empty list)" : ""), "prompt", "invalid_type");
  }
  if (has(j, "echo") && !j.at("echo").is_boolean()) throw bad("'echo' must be true or false", "echo", "invalid_type");
  job.echo = has(j, "echo") && j.at("echo").get<bool>();
  if (has(j, "logprobs") && !j.at("logprobs").is_number_integer())
    throw bad("'logprobs' must be an integer from 0 to " + std::to_string(kMaxLogprobs) +
                  " (how many alternatives per token)", "logprobs", "invalid_type");
  job.options.logprobs = integer(j, "logprobs", -1, 0, kMaxLogprobs);
  common(j, L, job);
  if (job.stream && (job.echo || job.options.logprobs >= 0))
    throw bad(std::string(job.echo ? "'echo'" : "'logprobs'") + " is not supported with stream: true; ask without "
                  "streaming", job.echo ? "echo" : "logprobs");
  return job;
}

std::vector<int64_t> parse_tokenize_request(const std::string& body, const tok::Tokenizer& tok, const Limits& L) {
  const json j = parse_body(body);
  if (!has(j, "prompt") || !j.at("prompt").is_string())
    throw bad("'prompt' is required: the text to tokenize", "prompt", "missing_required_parameter");
  if (has(j, "add_special_tokens") && !j.at("add_special_tokens").is_boolean())
    throw bad("'add_special_tokens' must be true or false", "add_special_tokens", "invalid_type");
  const bool specials = !has(j, "add_special_tokens") || j.at("add_special_tokens").get<bool>();
  std::vector<int64_t> ids;
  if (specials && L.bos_prefix) ids.push_back(tok.bos_id());
  for (uint32_t id : tok.encode_with_specials(j.at("prompt").get_ref<const std::string&>())) ids.push_back(id);
  return ids;
}

std::vector<uint32_t> parse_detokenize_request(const std::string& body, const tok::Tokenizer& tok) {
  const json j = parse_body(body);
  if (!has(j, "tokens") || !j.at("tokens").is_array())
    throw bad("'tokens' is required: a list of token ids", "tokens", "missing_required_parameter");
  std::vector<uint32_t> ids;
  for (const json& x : j.at("tokens")) {
    if (!x.is_number_integer()) throw bad("'tokens' must be a list of integer token ids", "tokens", "invalid_type");
    const bool ok = x.is_number_unsigned() ? x.get<uint64_t>() < tok.vocab_size()
                                           : x.get<int64_t>() >= 0 && x.get<int64_t>() < int64_t(tok.vocab_size());
    if (!ok)
      throw bad("'tokens' has the token id " + x.dump() + ", outside the vocabulary [0, " +
                    std::to_string(tok.vocab_size()) + ")", "tokens");
    ids.push_back(x.get<uint32_t>());
  }
  return ids;
}

}  // namespace kiln::serve
