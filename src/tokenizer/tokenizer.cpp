// Byte-level BPE encode/decode and the tokenizer JSON file. Encoding splits text with the PCRE2
// pattern, then merges each chunk by rank; a chunk that is itself a token is looked up directly
// (most chunks, at a large vocabulary), as tiktoken does.
#include "tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "core/json_file.h"
#include "tokenizer/bpe_merge.h"
#include "tokenizer/pair_map.h"
#include "tokenizer/parallel.h"
#include "tokenizer/sha256.h"
#include "tokenizer/split.h"

namespace kiln::tok {

struct Tokenizer::Impl {
  std::string pattern;
  std::vector<Merge> merges;
  PairMap ranks;                         // (a, b) -> merge rank
  std::vector<std::string> token_str;    // bytes of each id (a special's own name)
  std::vector<int32_t> token_bytes;      // UTF-8 byte length per id, 0 for specials
  std::unordered_map<std::string_view, uint32_t> whole;  // ordinary token bytes -> id
  uint32_t n_ordinary = 256;
  std::string sha;
  std::unique_ptr<Splitter> splitter;

  void build(const std::string& where) {
    splitter = std::make_unique<Splitter>(pattern, where);
    n_ordinary = 256 + uint32_t(merges.size());
    token_str.clear();
    for (int b = 0; b < 256; ++b) token_str.emplace_back(1, char(b));
    ranks.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      auto [a, b] = merges[r];
      uint32_t id = 256 + uint32_t(r);
      if (a >= id || b >= id)
        throw Error(where + ": merge " + std::to_string(r) + " = [" + std::to_string(a) + ", " +
                        std::to_string(b) + "] uses a token that does not exist yet (id >= " +
                        std::to_string(id) + ")",
                    "merges must be in rank order; retrain with ./tokenizer train");
      if (ranks.find(pair_key(a, b)) != PairMap::kMissing)
        throw Error(where + ": merge " + std::to_string(r) + " repeats an earlier pair",
                    "the file is corrupt; retrain with ./tokenizer train");
      ranks.insert(pair_key(a, b), uint32_t(r));
      token_str.push_back(token_str[a] + token_str[b]);
    }
    token_bytes.assign(token_str.size(), 0);
    for (size_t i = 0; i < token_str.size(); ++i) token_bytes[i] = int32_t(token_str[i].size());
    for (const auto& s : special_tokens()) {
      token_str.push_back(s);
      token_bytes.push_back(0);
    }
    whole.clear();
    whole.reserve(n_ordinary);
    for (uint32_t i = 0; i < n_ordinary; ++i) whole.emplace(token_str[i], i);
  }

  // One chunk: a whole-token lookup first (most chunks), else BPE merges by rank (bpe_merge.h).
  void encode_chunk(std::string_view chunk, std::vector<uint32_t>& out) const {
    if (chunk.size() == 1) { out.push_back(uint8_t(chunk[0])); return; }
    if (auto it = whole.find(chunk); it != whole.end()) { out.push_back(it->second); return; }
    thread_local std::vector<uint32_t> ids;
    ids.resize(chunk.size());
    for (size_t i = 0; i < chunk.size(); ++i) ids[i] = uint8_t(chunk[i]);
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

Tokenizer Tokenizer::from_merges(std::vector<Merge> merges, const std::string& pattern) {
  Tokenizer t;
  t.impl_->pattern = pattern.empty() ? kGpt4Pattern : pattern;
  t.impl_->merges = std::move(merges);
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
  } catch (const nlohmann::json::exception& e) {
    throw Error("[tokenizer] " + path + ": wrong type or shape: " + e.what(), "retrain with ./tokenizer train");
  }
  t.impl_->build("[tokenizer] " + path);
  // The stored specials, vocab size and byte lengths are redundant: check them, trust nothing.
  const auto& sp = need("special_tokens");
  for (size_t i = 0; i < special_tokens().size(); ++i) {
    const auto& name = special_tokens()[i];
    if (!sp.contains(name) || sp[name] != t.impl_->n_ordinary + i)
      throw Error("[tokenizer] " + path + ": special token " + name + " is missing or has the wrong id (expected " +
                      std::to_string(t.impl_->n_ordinary + i) + ")",
                  "special tokens follow the merges in nanochat's order; retrain with ./tokenizer train");
  }
  if (need("vocab_size") != t.vocab_size() || need("token_bytes").size() != t.vocab_size())
    throw Error("[tokenizer] " + path + ": vocab_size " + j["vocab_size"].dump() + " does not match 256 + " +
                    std::to_string(t.impl_->merges.size()) + " merges + 9 specials",
                "the file is inconsistent; retrain with ./tokenizer train");
  t.impl_->sha = sha256_hex(bytes);
  return t;
}

std::string Tokenizer::to_json() const {
  // One key per line, merges and byte lengths compact: diffable, and byte-identical for equal
  // tokenizers (the SHA-256 of these bytes identifies the tokenizer).
  using oj = nlohmann::ordered_json;
  oj specials = oj::object();
  for (size_t i = 0; i < special_tokens().size(); ++i) specials[special_tokens()[i]] = impl_->n_ordinary + i;
  oj merges = oj::array();
  for (auto [a, b] : impl_->merges) merges.push_back({a, b});
  std::string s = "{\n";
  s += "\"format\": \"kiln.tokenizer\",\n\"format_version\": 1,\n";
  s += "\"pattern\": " + oj(impl_->pattern).dump() + ",\n";
  s += "\"vocab_size\": " + std::to_string(vocab_size()) + ",\n";
  s += "\"special_tokens\": " + specials.dump() + ",\n";
  s += "\"merges\": " + merges.dump() + ",\n";
  s += "\"token_bytes\": " + oj(impl_->token_bytes).dump() + "\n}\n";
  return s;
}

void Tokenizer::save(const std::string& path) const {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error("[tokenizer] cannot write " + tmp, "check that the output directory exists and is writable");
    f << to_json();
    if (!f.flush()) throw Error("[tokenizer] writing " + tmp + " failed", "check free disk space");
  }
  std::filesystem::rename(tmp, path);
}

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
    for (size_t i = 0; i < special_tokens().size() && !hit; ++i)
      if (text.substr(pos).starts_with(special_tokens()[i])) hit = i + 1;
    if (!hit) { pos += 2; continue; }
    impl_->encode_ordinary(text.substr(start, pos - start), out);
    out.push_back(impl_->n_ordinary + uint32_t(hit - 1));
    pos += special_tokens()[hit - 1].size();
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

uint32_t Tokenizer::vocab_size() const { return impl_->n_ordinary + uint32_t(special_tokens().size()); }
uint32_t Tokenizer::bos_id() const { return impl_->n_ordinary; }

uint32_t Tokenizer::special_id(std::string_view name) const {
  for (size_t i = 0; i < special_tokens().size(); ++i)
    if (special_tokens()[i] == name) return impl_->n_ordinary + uint32_t(i);
  throw Error("[tokenizer] unknown special token '" + std::string(name) + "'",
              "the special tokens are <|bos|>, <|user_start|>, ... <|output_end|> (nanochat's nine)");
}

const std::vector<int32_t>& Tokenizer::token_bytes() const { return impl_->token_bytes; }
const std::string& Tokenizer::sha256() const { return impl_->sha; }
const std::vector<Merge>& Tokenizer::merges() const { return impl_->merges; }
const std::string& Tokenizer::pattern() const { return impl_->pattern; }

}  // namespace kiln::tok
