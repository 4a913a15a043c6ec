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
  // vocab.bpe first: its length says which ids are ordinary (256 + merges) and which special.
  std::ifstream f(vocab_bpe, std::ios::binary);
  if (!f) throw Error("[tokenizer] cannot open " + vocab_bpe, kHint);
  struct Line {
    std::string a, b, text;
    size_t lineno;
  };
  std::vector<Line> lines;
  std::string line;
  for (size_t lineno = 1; std::getline(f, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.starts_with("#version")) continue;
    const size_t sp = line.find(' ');
    Line l{"", "", line, lineno};
    if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos || !to_bytes(line.substr(0, sp), l.a) ||
        !to_bytes(line.substr(sp + 1), l.b))
      throw Error("[tokenizer] " + vocab_bpe + ":" + std::to_string(lineno) + ": '" + line.substr(0, 80) +
                      "' is not a merge (two tokens in GPT-2's byte alphabet)",
                  kHint);
    lines.push_back(std::move(l));
  }
  const uint32_t n_ordinary = 256 + uint32_t(lines.size());

  const nlohmann::json enc = read_json_file(encoder_json);
  if (!enc.is_object()) throw Error("[tokenizer] " + encoder_json + " is not a JSON object", kHint);
  std::unordered_map<std::string, uint32_t> id_of;  // ordinary token bytes -> id
  std::vector<std::pair<uint32_t, std::string>> specials;
  std::string bytes;
  for (const auto& [key, v] : enc.items()) {
    if (!v.is_number_unsigned() || v.get<uint64_t>() >= (1u << 31))
      throw Error("[tokenizer] " + encoder_json + ": entry '" + key + "' has id " + v.dump() + ", not a token id", kHint);
    const uint32_t id = uint32_t(v.get<uint64_t>());
    if (id >= n_ordinary) {
      if (!key.starts_with("<|") || !key.ends_with("|>"))
        throw Error("[tokenizer] " + encoder_json + ": token '" + key + "' has id " + std::to_string(id) + ", beyond the " +
                        std::to_string(n_ordinary) + " tokens that " + vocab_bpe + "'s " + std::to_string(lines.size()) +
                        " merges make",
                    std::string("the two files do not belong together (or one is truncated); ") + kHint);
      specials.emplace_back(id, key);
    }
    else if (to_bytes(key, bytes)) id_of.emplace(bytes, id);
    else throw Error("[tokenizer] " + encoder_json + ": entry '" + key + "' is not spelled in GPT-2's byte alphabet", kHint);
  }
  std::vector<uint32_t> byte_ids(256);
  for (int b = 0; b < 256; ++b) {
    auto it = id_of.find(std::string(1, char(b)));
    if (it == id_of.end() || it->second >= 256)
      throw Error("[tokenizer] " + encoder_json + ": byte " + std::to_string(b) + " ('" + byte_chars()[b] +
                      "') is missing or not among ids 0..255",
                  kHint);
    byte_ids[b] = it->second;
  }
  std::vector<Merge> merges;
  for (const auto& l : lines) {
    auto ia = id_of.find(l.a), ib = id_of.find(l.b), iab = id_of.find(l.a + l.b);
    const uint32_t want = 256 + uint32_t(merges.size());
    if (ia == id_of.end() || ib == id_of.end() || iab == id_of.end() || iab->second != want)
      throw Error("[tokenizer] " + vocab_bpe + ":" + std::to_string(l.lineno) + ": merge '" + l.text +
                      "' does not produce id " + std::to_string(want) + " of " + encoder_json,
                  std::string("the two files do not belong together; ") + kHint);
    merges.emplace_back(ia->second, ib->second);
  }
  if (id_of.size() != n_ordinary)
    throw Error("[tokenizer] " + encoder_json + " has " + std::to_string(id_of.size()) + " distinct ordinary tokens but " +
                    vocab_bpe + " makes " + std::to_string(n_ordinary) + " (256 bytes + merges)",
                kHint);
  std::sort(specials.begin(), specials.end());
  std::vector<std::string> names;
  for (const auto& [id, name] : specials) {
    if (id != n_ordinary + names.size())
      throw Error("[tokenizer] " + encoder_json + ": special '" + name + "' has id " + std::to_string(id) + ", expected " +
                      std::to_string(n_ordinary + names.size()) + " (specials follow the merges)",
                  kHint);
    names.push_back(name);
  }
  if (names.empty()) names = {"<|endoftext|>"};  // GPT-2's, when a vocab.json omits it
  return Tokenizer::from_merges(std::move(merges), kGpt2Pattern, std::move(byte_ids), std::move(names));
}

void write_gpt2_files(const Tokenizer& tok, const std::string& dir) {
  if (tok.pattern() != kGpt2Pattern)
    throw Error("[export] the tokenizer splits text with another pattern than GPT-2's",
                "Hugging Face's GPT2Tokenizer hard-codes GPT-2's pattern; export a model trained with a GPT-2 "
                "tokenizer (./tokenizer import-gpt2)");
  auto spell = [&](uint32_t id) {
    std::string s;
    for (char c : tok.decode_token(id)) s += byte_chars()[uint8_t(c)];
    return s;
  };
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  const uint32_t n_ordinary = 256 + uint32_t(tok.merges().size());
  for (uint32_t id = 0; id < n_ordinary; ++id) vocab[spell(id)] = id;
  for (size_t i = 0; i < tok.specials().size(); ++i) vocab[tok.specials()[i]] = n_ordinary + i;
  std::string merges = "#version: 0.2\n";
  for (auto [a, b] : tok.merges()) merges += spell(a) + " " + spell(b) + "\n";
  write_text_file(dir + "/vocab.json", vocab.dump());
  write_text_file(dir + "/merges.txt", merges);
}

}  // namespace kiln::tok
