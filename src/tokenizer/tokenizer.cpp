// Byte-level BPE encode/decode and the tokenizer JSON file. Encoding splits text with the PCRE2
// pattern, then merges each chunk by rank; a chunk that is itself a token is looked up directly
// (most chunks, at a large vocabulary), as tiktoken does.
#include "tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "core/json_file.h"
#include "tokenizer/bpe_merge.h"
#include "tokenizer/pair_map.h"
#include "core/parallel.h"
#include "core/sha256.h"
#include "tokenizer/split.h"

namespace kiln::tok {

struct Tokenizer::Impl {
  std::string pattern;
  std::vector<Merge> merges;
  std::vector<uint32_t> byte_ids;        // id of each byte value; empty = identity
  std::vector<std::string> specials;     // in id order after the merges
  PairMap ranks;                         // (a, b) -> merge rank
  std::vector<std::string> token_str;    // bytes of each id (a special's own name)
  std::vector<int32_t> token_bytes;      // UTF-8 byte length per id, 0 for specials
  std::unordered_map<std::string_view, uint32_t> whole;  // ordinary token bytes -> id
  uint32_t n_ordinary = 256;
  std::string sha;
  std::unique_ptr<Splitter> splitter;

  uint32_t id_of(uint8_t b) const { return byte_ids.empty() ? b : byte_ids[b]; }

  // Before any token string is built: every merge joins existing tokens, and the byte lengths
  // they imply (counted, not built) stay under the caps. A few KB of merges that join a token
  // with itself would otherwise double its length each time (35 merges: ~170 GB of strings).
  void check_lengths(const std::string& where) const {
    std::vector<uint64_t> len(256 + merges.size(), 1);
    uint64_t total = 256;
    for (size_t r = 0; r < merges.size(); ++r) {
      auto [a, b] = merges[r];
      const uint32_t id = 256 + uint32_t(r);
      if (a >= id || b >= id)
        throw Error(where + ": merge " + std::to_string(r) + " = [" + std::to_string(a) + ", " +
                        std::to_string(b) + "] uses a token that does not exist yet (id >= " +
                        std::to_string(id) + ")",
                    "merges must be in rank order; retrain with ./tokenizer train");
      len[id] = len[a] + len[b];  // each <= kMaxTokenBytes: no overflow
      total += len[id];
      if (len[id] > kMaxTokenBytes)
        throw Error(where + ": merge " + std::to_string(r) + " = [" + std::to_string(a) + ", " + std::to_string(b) +
                        "] makes a token of " + std::to_string(len[id]) + " bytes, over the limit of " +
                        std::to_string(kMaxTokenBytes),
                    "the file is corrupt or hostile (merges that keep joining a token with itself); retrain with "
                    "./tokenizer train");
      if (total > kMaxVocabBytes)
        throw Error(where + ": merges 0.." + std::to_string(r) + " make " + std::to_string(total) +
                        " bytes of token text in all, over the limit of " + std::to_string(kMaxVocabBytes),
                    "the file is corrupt or hostile; retrain with ./tokenizer train");
    }
  }

  void build(const std::string& where) {
    splitter = std::make_unique<Splitter>(pattern, where);
    n_ordinary = 256 + uint32_t(merges.size());
    if (specials.empty()) specials = special_tokens();
    if (!byte_ids.empty()) {
      std::vector<char> seen(256, 0);
      for (uint32_t id : byte_ids)
        if (id < 256) seen[id] = 1;
      if (byte_ids.size() != 256 || std::count(seen.begin(), seen.end(), 1) != 256)
        throw Error(where + ": byte_ids is not a permutation of 0..255",
                    "the file is corrupt; re-import it (./tokenizer import-gpt2) or retrain");
    }
    check_lengths(where);
    token_str.assign(256, std::string());
    for (int b = 0; b < 256; ++b) token_str[id_of(uint8_t(b))] = std::string(1, char(b));
    ranks.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      auto [a, b] = merges[r];
      if (ranks.find(pair_key(a, b)) != PairMap::kMissing)
        throw Error(where + ": merge " + std::to_string(r) + " repeats an earlier pair",
                    "the file is corrupt; retrain with ./tokenizer train");
      ranks.insert(pair_key(a, b), uint32_t(r));
      token_str.push_back(token_str[a] + token_str[b]);
    }
    token_bytes.assign(token_str.size(), 0);
    for (size_t i = 0; i < token_str.size(); ++i) token_bytes[i] = int32_t(token_str[i].size());
    for (const auto& s : specials) {
      token_str.push_back(s);
      token_bytes.push_back(0);
    }
    whole.clear();
    whole.reserve(n_ordinary);
    for (uint32_t i = 0; i < n_ordinary; ++i) whole.emplace(token_str[i], i);
  }

  // One chunk: a whole-token lookup first (most chunks), else BPE merges by rank (bpe_merge.h).
  void encode_chunk(std::string_view chunk, std::vector<uint32_t>& out) const {
    if (chunk.size() == 1) { out.push_back(id_of(uint8_t(chunk[0]))); return; }
    if (auto it = whole.find(chunk); it != whole.end()) { out.push_back(it->second); return; }
    thread_local std::vector<uint32_t> ids;
    ids.resize(chunk.size());
    for (size_t i = 0; i < chunk.size(); ++i) ids[i] = id_of(uint8_t(chunk[i]));
    size_t n = bpe_merge(ids, chunk.size(), ranks);
    out.insert(out.end(), ids.begin(), ids.begin() + n);
  }

  void encode_ordinary(std::string_view text, std::vector<uint32_t>& out) const {
    splitter->split(text, [&](std::string_view c) { encode_chunk(c, out); });
  }
};

Tokenizer::Tokenizer() : impl_(new Impl) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::from_merges(std::vector<Merge> merges, const std::string& pattern,
                                 std::vector<uint32_t> byte_ids, std::vector<std::string> specials) {
  Tokenizer t;
  t.impl_->pattern = pattern.empty() ? kGpt4Pattern : pattern;
  t.impl_->merges = std::move(merges);
  t.impl_->byte_ids = std::move(byte_ids);
  t.impl_->specials = std::move(specials);
  t.impl_->build("tokenizer");
  t.impl_->sha = sha256_hex(t.to_json());
  return t;
}

Tokenizer Tokenizer::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    throw Error("[tokenizer] cannot open " + path,
                "train one with: ./tokenizer train --vocab-size N --output " + path + " INPUT...");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string bytes = ss.str();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(bytes);
  } catch (const nlohmann::json::exception& e) {
    throw Error("[tokenizer] " + path + " is not valid JSON: " + e.what(),
                "the file may be truncated; retrain with ./tokenizer train");
  }
  auto need = [&](const char* key) -> const nlohmann::json& {
    if (!j.is_object() || !j.contains(key))
      throw Error("[tokenizer] " + path + ": missing key '" + key + "'",
                  "not a kiln tokenizer file (format \"kiln.tokenizer\"); retrain with ./tokenizer train");
    return j.at(key);
  };
  Tokenizer t;
  try {
    need("format_version");
    if (need("format").get<std::string>() != "kiln.tokenizer" || json_get<int64_t>(j, "format_version", path) != 1)
      throw Error("[tokenizer] " + path + ": format is " + j["format"].dump() + " version " +
                      j["format_version"].dump() + ", expected \"kiln.tokenizer\" version 1",
                  "retrain with this build's ./tokenizer train");
    t.impl_->pattern = need("pattern").get<std::string>();
    auto id = [&](const nlohmann::json& v) {  // checked first: get<uint32_t>() of 1e30 is undefined
      if (!v.is_number_unsigned() || v.get<uint64_t>() > UINT32_MAX)
        throw Error("[tokenizer] " + path + ": merge entry " + v.dump().substr(0, 40) + " is not a token id",
                    "the file is corrupt; retrain with ./tokenizer train");
      return uint32_t(v.get<uint64_t>());
    };
    for (const auto& m : need("merges")) t.impl_->merges.emplace_back(id(m.at(0)), id(m.at(1)));
    if (j.contains("byte_ids"))
      for (const auto& b : j.at("byte_ids")) t.impl_->byte_ids.push_back(id(b));
    // The specials in id order (an object's keys come back sorted by name, not by id).
    std::vector<std::pair<uint64_t, std::string>> sp;
    for (const auto& [name, v] : need("special_tokens").items()) sp.emplace_back(id(v), name);
    std::sort(sp.begin(), sp.end());
    for (const auto& [v, name] : sp) t.impl_->specials.push_back(name);
    if (sp.empty())
      throw Error("[tokenizer] " + path + ": special_tokens is empty",
                  "a kiln tokenizer has at least one special token (the document separator)");
  } catch (const nlohmann::json::exception& e) {
    throw Error("[tokenizer] " + path + ": wrong type or shape: " + e.what(), "retrain with ./tokenizer train");
  }
  t.impl_->build("[tokenizer] " + path);
  // The stored specials, vocab size and byte lengths are redundant: check them, trust nothing.
  const auto& sp = need("special_tokens");
  for (size_t i = 0; i < t.impl_->specials.size(); ++i) {
    const auto& name = t.impl_->specials[i];
    if (sp[name] != t.impl_->n_ordinary + i)
      throw Error("[tokenizer] " + path + ": special token " + name + " has id " + sp[name].dump() + ", expected " +
                      std::to_string(t.impl_->n_ordinary + i),
                  "special tokens follow the merges with consecutive ids; retrain with ./tokenizer train");
  }
  if (need("vocab_size") != t.vocab_size() || need("token_bytes").size() != t.vocab_size())
    throw Error("[tokenizer] " + path + ": vocab_size " + j["vocab_size"].dump() + " does not match 256 + " +
                    std::to_string(t.impl_->merges.size()) + " merges + " + std::to_string(t.impl_->specials.size()) +
                    " specials",
                "the file is inconsistent; retrain with ./tokenizer train");
  t.impl_->sha = sha256_hex(bytes);
  return t;
}

std::string Tokenizer::to_json() const {
  // One key per line, merges and byte lengths compact: diffable, and byte-identical for equal
  // tokenizers (the SHA-256 of these bytes identifies the tokenizer).
  using oj = nlohmann::ordered_json;
  oj specials = oj::object();
  for (size_t i = 0; i < impl_->specials.size(); ++i) specials[impl_->specials[i]] = impl_->n_ordinary + i;
  oj merges = oj::array();
  for (auto [a, b] : impl_->merges) merges.push_back({a, b});
  std::string s = "{\n";
  s += "\"format\": \"kiln.tokenizer\",\n\"format_version\": 1,\n";
  s += "\"pattern\": " + oj(impl_->pattern).dump() + ",\n";
  s += "\"vocab_size\": " + std::to_string(vocab_size()) + ",\n";
  s += "\"special_tokens\": " + specials.dump() + ",\n";
  s += "\"merges\": " + merges.dump() + ",\n";
  if (!impl_->byte_ids.empty()) s += "\"byte_ids\": " + oj(impl_->byte_ids).dump() + ",\n";  // absent = identity
  s += "\"token_bytes\": " + oj(impl_->token_bytes).dump() + "\n}\n";
  return s;
}

void Tokenizer::save(const std::string& path) const { write_text_file(path, to_json()); }

std::vector<uint32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<uint32_t> out;
  out.reserve(text.size() / 3 + 4);
  impl_->encode_ordinary(text, out);
  return out;
}

std::vector<uint32_t> Tokenizer::encode_with_specials(std::string_view text) const {
  std::vector<uint32_t> out;
  size_t start = 0, pos = 0;
  while ((pos = text.find("<|", pos)) != std::string_view::npos) {
    size_t hit = 0;
    const auto& sp = impl_->specials;
    for (size_t i = 0; i < sp.size() && !hit; ++i)
      if (text.substr(pos).starts_with(sp[i])) hit = i + 1;
    if (!hit) { pos += 2; continue; }
    impl_->encode_ordinary(text.substr(start, pos - start), out);
    out.push_back(impl_->n_ordinary + uint32_t(hit - 1));
    pos += sp[hit - 1].size();
    start = pos;
  }
  impl_->encode_ordinary(text.substr(start), out);
  return out;
}

std::vector<std::vector<uint32_t>> Tokenizer::encode_batch(const std::vector<std::string>& texts) const {
  std::vector<std::vector<uint32_t>> out(texts.size());
  parallel_for(texts.size(), [&](size_t i) { out[i] = encode(texts[i]); });
  return out;
}

std::string Tokenizer::decode(const std::vector<uint32_t>& ids) const {
  std::string s;
  for (uint32_t id : ids) s += decode_token(id);
  return s;
}

std::string Tokenizer::decode_token(uint32_t id) const {
  if (id >= impl_->token_str.size())
    throw Error("[tokenizer] token id " + std::to_string(id) + " is out of range (vocab size " +
                    std::to_string(vocab_size()) + ")",
                "were these ids made with a different tokenizer?");
  return impl_->token_str[id];
}

uint32_t Tokenizer::vocab_size() const { return impl_->n_ordinary + uint32_t(impl_->specials.size()); }
uint32_t Tokenizer::bos_id() const { return impl_->n_ordinary; }

std::optional<uint32_t> Tokenizer::find_special(std::string_view name) const {
  const auto& sp = impl_->specials;
  for (size_t i = 0; i < sp.size(); ++i)
    if (sp[i] == name) return impl_->n_ordinary + uint32_t(i);
  return std::nullopt;
}

uint32_t Tokenizer::special_id(std::string_view name) const {
  if (auto id = find_special(name)) return *id;
  const auto& sp = impl_->specials;
  std::string have;
  for (const auto& s : sp) have += (have.empty() ? "" : " ") + s;
  throw Error("[tokenizer] this tokenizer has no special token '" + std::string(name) + "' (it has: " + have + ")",
              sp == special_tokens()
                  ? std::string("nanochat's nine are <|bos|>, <|user_start|>, ... <|output_end|>")
                  : std::string("chat (midtrain, sft, ./chat, chat sampling) needs nanochat's chat tokens, which a "
                                "GPT-2 tokenizer lacks: use plain text (./sample without --chat, pretrain-style "
                                "fine-tuning) or a tokenizer from ./tokenizer train"));
}

const std::vector<std::string>& Tokenizer::specials() const { return impl_->specials; }
uint32_t Tokenizer::byte_id(uint8_t b) const { return impl_->id_of(b); }

const std::vector<int32_t>& Tokenizer::token_bytes() const { return impl_->token_bytes; }
const std::string& Tokenizer::sha256() const { return impl_->sha; }
const std::vector<Merge>& Tokenizer::merges() const { return impl_->merges; }
const std::string& Tokenizer::pattern() const { return impl_->pattern; }

}  // namespace kiln::tok
