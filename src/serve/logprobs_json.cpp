// Logprobs objects; see logprobs_json.h.
#include "serve/logprobs_json.h"

#include <cstdio>

#include "tokenizer/tokenizer.h"

namespace kiln::serve {

using nlohmann::json;

namespace {
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

// Characters of `s`, a partial character's lead byte counting as one (Python's len() of
// s.decode("utf-8", errors="replace") for a string cut inside a character).
int64_t chars(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

json top_dict(const tok::Tokenizer& tok, const engine::TokenLogprob& t) {
  json d = json::object();
  for (const auto& [id, lp] : t.top) d[token_string(tok, id)] = lp;
  return d;
}

json byte_list(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(c);
  return b;
}
}  // namespace

std::string token_bytes(const tok::Tokenizer& tok, int64_t id) {
  if (id < 0 || id >= static_cast<int64_t>(tok.vocab_size())) return "";
  return tok.decode_token(static_cast<uint32_t>(id));
}

std::string token_string(const tok::Tokenizer& tok, int64_t id) {
  std::string s = token_bytes(tok, id);
  if (valid_utf8(s)) return s;
  std::string out = "bytes:";
  char buf[5];
  for (unsigned char c : s) {
    std::snprintf(buf, sizeof buf, "\\x%02x", c);
    out += buf;
  }
  return out;
}

json completion_logprobs(const tok::Tokenizer& tok, const std::vector<int64_t>& prompt, bool echo,
                         const std::vector<engine::TokenLogprob>& prompt_lp,
                         const std::vector<engine::TokenLogprob>& gen) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  int64_t offset = 0;
  auto add = [&](int64_t id, const engine::TokenLogprob* t) {
    tokens.push_back(token_string(tok, id));
    lps.push_back(t ? json(t->logprob) : json(nullptr));
    tops.push_back(t ? top_dict(tok, *t) : json(nullptr));
    offsets.push_back(offset);
  };
  std::string text;  // the prompt's then the completion's bytes so far
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (echo) {
      offset = chars(text);
      add(prompt[i], i == 0 || i - 1 >= prompt_lp.size() ? nullptr : &prompt_lp[i - 1]);
    }
    text += token_bytes(tok, prompt[i]);
  }
  for (const auto& t : gen) {
    offset = chars(text);
    add(t.id, &t);
    text += token_bytes(tok, t.id);
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json chat_logprobs(const tok::Tokenizer& tok, const std::vector<engine::TokenLogprob>& gen, size_t count) {
  json content = json::array();
  for (size_t i = 0; i < gen.size() && i < count; ++i) {
    const auto& t = gen[i];
    json top = json::array();
    for (const auto& [id, lp] : t.top)
      top.push_back({{"token", token_string(tok, id)}, {"logprob", lp}, {"bytes", byte_list(token_bytes(tok, id))}});
    content.push_back({{"token", token_string(tok, t.id)},
                       {"logprob", t.logprob},
                       {"bytes", byte_list(token_bytes(tok, t.id))},
                       {"top_logprobs", std::move(top)}});
  }
  return {{"content", std::move(content)}};
}

}  // namespace kiln::serve
