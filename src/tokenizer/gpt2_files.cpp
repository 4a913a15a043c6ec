// GPT-2 tokenizer files: bytes_to_unicode as encoder.py defines it (printable Latin-1 bytes map
// to themselves, the other 68 to U+0100.. in byte order), then ids checked against the merge order
// so that a kiln tokenizer built from the merges reproduces encoder.json exactly.
#include "tokenizer/gpt2_files.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <fstream>
#include <unordered_map>

#include "core/error.h"
#include "core/json_file.h"
#include "tokenizer/split.h"

namespace kiln::tok {

namespace {

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {  // GPT-2's table stays below U+0800: two bytes
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

const std::array<std::string, 256>& byte_chars() {
  static const std::array<std::string, 256> t = [] {
    std::array<std::string, 256> a;
    uint32_t n = 0;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      a[b] = utf8(printable ? b : 256 + n++);
    }
    return a;
  }();
  return t;
}

// A GPT-2 file string (characters of the byte table) back to its bytes; false if it is not one.
bool to_bytes(const std::string& s, std::string& out) {
  static const std::unordered_map<std::string, char> inv = [] {
    std::unordered_map<std::string, char> m;
    for (int b = 0; b < 256; ++b) m.emplace(byte_chars()[b], char(b));
    return m;
  }();
  out.clear();
  for (size_t i = 0; i < s.size();) {
    const size_t n = (uint8_t(s[i]) < 0x80) ? 1 : 2;
    auto it = inv.find(s.substr(i, n));
    if (it == inv.end()) return false;
    out += it->second;
    i += n;
  }
  return true;
}

constexpr const char* kHint = "use OpenAI's GPT-2 encoder.json and vocab.bpe (or vocab.json and merges.txt from a "
                              "Hugging Face gpt2 directory; data_tools/fetch_gpt2.sh downloads them)";

}  // namespace

const std::string& gpt2_byte_char(uint8_t b) { return byte_chars()[b]; }

Tokenizer import_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe) {
  std::ifstream f(vocab_bpe, std::ios::binary);
  if (!f) throw Error("[tokenizer] cannot open " + vocab_bpe, kHint);
  std::vector<SpelledMerge> merges;
  std::string line;
  for (size_t lineno = 1; std::getline(f, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.starts_with("#version")) continue;
    const size_t sp = line.find(' ');
    const std::string where = vocab_bpe + ":" + std::to_string(lineno);
    if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
      throw Error("[tokenizer] " + where + ": '" + line.substr(0, 80) + "' is not a merge (two tokens in GPT-2's byte alphabet)",
                  kHint);
    merges.push_back({line.substr(0, sp), line.substr(sp + 1), where});
  }
  Tokenizer t = tokenizer_from_spelled(read_json_file(encoder_json), merges, kGpt2Pattern, encoder_json, vocab_bpe, kHint,
                                       {"<|endoftext|>"});  // GPT-2's, when a vocab.json omits it
  return t;
}

Tokenizer tokenizer_from_spelled(const nlohmann::json& enc, const std::vector<SpelledMerge>& merge_text,
                                 const std::string& pattern, const std::string& vocab_where, const std::string& merges_where,
                                 const std::string& hint,
                                 std::vector<std::string> default_specials) {
  // The merges first: their number says which ids are ordinary (256 + merges) and which special.
  struct Line {
    std::string a, b;
    const SpelledMerge* src;
  };
  std::vector<Line> lines;
  for (const auto& m : merge_text) {
    Line l{"", "", &m};
    if (!to_bytes(m.a, l.a) || !to_bytes(m.b, l.b))
      throw Error("[tokenizer] " + m.where + ": '" + (m.a + " " + m.b).substr(0, 80) +
                      "' is not a merge (two tokens in GPT-2's byte alphabet)",
                  hint);
    lines.push_back(std::move(l));
  }
  const uint32_t n_ordinary = 256 + uint32_t(lines.size());

  if (!enc.is_object()) throw Error("[tokenizer] " + vocab_where + ": the vocabulary is not a JSON object", hint);
  std::unordered_map<std::string, uint32_t> id_of;  // ordinary token bytes -> id
  std::vector<std::pair<uint32_t, std::string>> specials;
  std::string bytes;
  for (const auto& [key, v] : enc.items()) {
    if (!v.is_number_unsigned() || v.get<uint64_t>() >= (1u << 31))
      throw Error("[tokenizer] " + vocab_where + ": entry '" + key + "' has id " + v.dump() + ", not a token id", hint);
    const uint32_t id = uint32_t(v.get<uint64_t>());
    if (id >= n_ordinary) {
      if (!key.starts_with("<|") || !key.ends_with("|>"))
        throw Error("[tokenizer] " + vocab_where + ": token '" + key + "' has id " + std::to_string(id) + ", beyond the " +
                        std::to_string(n_ordinary) + " tokens that the " + std::to_string(lines.size()) + " merges of " + merges_where + " make",
                    std::string("the vocabulary and the merges do not belong together (or one is truncated); ") + hint);
      specials.emplace_back(id, key);
    }
    else if (to_bytes(key, bytes)) id_of.emplace(bytes, id);
    else throw Error("[tokenizer] " + vocab_where + ": entry '" + key + "' is not spelled in GPT-2's byte alphabet", hint);
  }
  std::vector<uint32_t> byte_ids(256);
  for (int b = 0; b < 256; ++b) {
    auto it = id_of.find(std::string(1, char(b)));
    if (it == id_of.end() || it->second >= 256)
      throw Error("[tokenizer] " + vocab_where + ": byte " + std::to_string(b) + " ('" + byte_chars()[b] +
                      "') is missing or not among ids 0..255",
                  hint);
    byte_ids[b] = it->second;
  }
  std::vector<Merge> merges;
  for (const auto& l : lines) {
    auto ia = id_of.find(l.a), ib = id_of.find(l.b), iab = id_of.find(l.a + l.b);
    const uint32_t want = 256 + uint32_t(merges.size());
    if (ia == id_of.end() || ib == id_of.end() || iab == id_of.end() || iab->second != want)
      throw Error("[tokenizer] " + l.src->where + ": merge '" + l.src->a + " " + l.src->b + "' does not produce id " +
                      std::to_string(want) + " of " + vocab_where,
                  std::string("kiln's BPE numbers merge r as token 256 + r; the vocabulary and the merges do not "
                              "follow it or do not belong together; ") + hint);
    merges.emplace_back(ia->second, ib->second);
  }
  if (id_of.size() != n_ordinary)
    throw Error("[tokenizer] " + vocab_where + " has " + std::to_string(id_of.size()) + " distinct ordinary tokens but the " +
                    std::to_string(lines.size()) + " merges of " + merges_where + " make " + std::to_string(n_ordinary) + " (256 bytes + merges)",
                hint);
  std::sort(specials.begin(), specials.end());
  std::vector<std::string> names;
  for (const auto& [id, name] : specials) {
    if (id != n_ordinary + names.size())
      throw Error("[tokenizer] " + vocab_where + ": special '" + name + "' has id " + std::to_string(id) + ", expected " +
                      std::to_string(n_ordinary + names.size()) + " (specials follow the merges)",
                  hint);
    names.push_back(name);
  }
  // Bytes in kiln's own order (byte b = id b) are stored as no byte_ids, so a tokenizer that
  // ./export wrote comes back byte-identical (same SHA-256: shards and checkpoints still match).
  bool identity = true;
  for (uint32_t b = 0; b < 256; ++b) identity = identity && byte_ids[b] == b;
  if (identity) byte_ids.clear();
  if (names.empty()) names = std::move(default_specials);
  if (names.empty())
    throw Error("[tokenizer] " + vocab_where + " has no special tokens", hint);
  return Tokenizer::from_merges(std::move(merges), pattern, std::move(byte_ids), std::move(names));
}

SpelledVocab spell_tokenizer(const Tokenizer& tok) {
  auto spell = [&](uint32_t id) {
    std::string s;
    for (char c : tok.decode_token(id)) s += byte_chars()[uint8_t(c)];
    return s;
  };
  SpelledVocab out;
  out.vocab = nlohmann::ordered_json::object();
  const uint32_t n_ordinary = 256 + uint32_t(tok.merges().size());
  for (uint32_t id = 0; id < n_ordinary; ++id) out.vocab[spell(id)] = id;
  for (auto [a, b] : tok.merges()) out.merges.emplace_back(spell(a), spell(b));
  return out;
}

void write_gpt2_files(const Tokenizer& tok, const std::string& dir) {
  if (tok.pattern() != kGpt2Pattern)
    throw Error("[export] the tokenizer splits text with another pattern than GPT-2's",
                "Hugging Face's GPT2Tokenizer hard-codes GPT-2's pattern; export a model trained with a GPT-2 "
                "tokenizer (./tokenizer import-gpt2)");
  SpelledVocab sv = spell_tokenizer(tok);
  const uint32_t n_ordinary = 256 + uint32_t(tok.merges().size());
  for (size_t i = 0; i < tok.specials().size(); ++i) sv.vocab[tok.specials()[i]] = n_ordinary + i;
  std::string merges = "#version: 0.2\n";
  for (const auto& [a, b] : sv.merges) merges += a + " " + b + "\n";
  write_text_file(dir + "/vocab.json", sv.vocab.dump());
  write_text_file(dir + "/merges.txt", merges);
}

}  // namespace kiln::tok
