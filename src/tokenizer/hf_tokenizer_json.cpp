// See hf_tokenizer_json.h. The vocabulary/merges machinery is gpt2_files' (one reader for
// vocab.json + merges.txt and for tokenizer.json); this file adds tokenizer.json's envelope.
#include "tokenizer/hf_tokenizer_json.h"

#include "core/error.h"
#include "core/json_file.h"
#include "tokenizer/gpt2_files.h"
#include "tokenizer/split.h"

namespace kiln::tok {

namespace {
constexpr const char* kHint = "kiln reads the tokenizer.json of a byte-level BPE (what ./export, nanochat and "
                              "transformers' NanoChat write)";
}  // namespace

nlohmann::ordered_json hf_tokenizer_json(const Tokenizer& tok) {
  SpelledVocab sv = spell_tokenizer(tok);
  const uint32_t n_ordinary = 256 + uint32_t(tok.merges().size());
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (size_t i = 0; i < tok.specials().size(); ++i)
    added.push_back({{"id", n_ordinary + i},
                     {"content", tok.specials()[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  nlohmann::ordered_json merges = nlohmann::ordered_json::array();
  for (const auto& [a, b] : sv.merges) merges.push_back({a, b});
  const nlohmann::ordered_json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}};
  nlohmann::ordered_json split = {{"type", "Split"}, {"behavior", "Isolated"}, {"invert", false}};
  split["pattern"] = {{"Regex", tok.pattern()}};
  nlohmann::ordered_json pre = {{"type", "Sequence"}};
  pre["pretokenizers"] = nlohmann::ordered_json::array({split, byte_level});
  nlohmann::ordered_json model = {{"type", "BPE"},
                                  {"dropout", nullptr},
                                  {"unk_token", nullptr},
                                  {"continuing_subword_prefix", nullptr},
                                  {"end_of_word_suffix", nullptr},
                                  {"fuse_unk", false},
                                  {"byte_fallback", false},
                                  {"ignore_merges", false}};
  model["vocab"] = std::move(sv.vocab);
  model["merges"] = std::move(merges);
  nlohmann::ordered_json j = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}};
  j["added_tokens"] = std::move(added);
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = std::move(pre);
  j["post_processor"] = nullptr;
  j["decoder"] = byte_level;
  j["model"] = std::move(model);
  return j;
}

Tokenizer read_hf_tokenizer_json(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  auto bad = [&](const std::string& key, const std::string& what) {
    return Error("[tokenizer] " + path + ": " + key + " " + what, kHint);
  };
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) throw bad("model", "is missing");
  const auto& m = j["model"];
  if (m.value("type", std::string("BPE")) != "BPE") throw bad("model.type", "is " + m["type"].dump() + ", not \"BPE\"");
  if (m.value("ignore_merges", false)) throw bad("model.ignore_merges", "is true; kiln's BPE always applies the merges");
  if (m.contains("byte_fallback") && m["byte_fallback"] == true) throw bad("model.byte_fallback", "is true");
  if (j.contains("normalizer") && !j["normalizer"].is_null())
    throw bad("normalizer", "is " + j["normalizer"].value("type", std::string("set")) + "; kiln encodes raw bytes");
  // The split pattern: [Split(pattern, Isolated), ByteLevel(use_regex false)], or ByteLevel with
  // its own (GPT-2's) regex.
  std::string pattern;
  const nlohmann::json pre = j.value("pre_tokenizer", nlohmann::json());
  auto is_byte_level = [](const nlohmann::json& p) { return p.is_object() && p.value("type", "") == "ByteLevel"; };
  if (is_byte_level(pre) && pre.value("use_regex", true)) {
    pattern = kGpt2Pattern;
  } else if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
             pre["pretokenizers"].is_array() && pre["pretokenizers"].size() == 2 &&
             pre["pretokenizers"][0].value("type", "") == "Split" && is_byte_level(pre["pretokenizers"][1]) &&
             !pre["pretokenizers"][1].value("use_regex", true)) {
    const auto& sp = pre["pretokenizers"][0];
    if (sp.value("behavior", "") != "Isolated" || sp.value("invert", false) || !sp.contains("pattern") ||
        !sp["pattern"].is_object() || !sp["pattern"].contains("Regex") || !sp["pattern"]["Regex"].is_string())
      throw bad("pre_tokenizer.pretokenizers[0]", "is not a Split on a Regex with behavior Isolated");
    pattern = sp["pattern"]["Regex"].get<std::string>();
  } else {
    throw bad("pre_tokenizer", "is " + pre.dump().substr(0, 200) +
                                   "; kiln reads [Split(Regex, Isolated), ByteLevel(use_regex: false)] or ByteLevel");
  }
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw bad("model.vocab", "is missing");
  if (!m.contains("merges") || !m["merges"].is_array()) throw bad("model.merges", "is missing");
  std::vector<SpelledMerge> merges;
  for (size_t i = 0; i < m["merges"].size(); ++i) {
    const auto& e = m["merges"][i];
    const std::string where = path + ": model.merges[" + std::to_string(i) + "]";
    if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      merges.push_back({e[0].get<std::string>(), e[1].get<std::string>(), where});
    } else if (e.is_string() && e.get<std::string>().find(' ') != std::string::npos) {
      const std::string s = e.get<std::string>();  // the older "a b" spelling
      merges.push_back({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1), where});
    } else {
      throw bad("model.merges[" + std::to_string(i) + "]", "is " + e.dump().substr(0, 80) + ", not a pair of tokens");
    }
  }
  // The specials: added tokens (special: true), which nanochat's files also list in the vocab.
  nlohmann::json vocab = m["vocab"];
  for (const auto& a : j.value("added_tokens", nlohmann::json::array())) {
    if (!a.is_object() || !a.contains("id") || !a.contains("content") || !a["content"].is_string())
      throw bad("added_tokens", "holds an entry without id and content: " + a.dump().substr(0, 80));
    if (!a.value("special", false)) throw bad("added_tokens", "holds the non-special token " + a["content"].dump());
    vocab[a["content"].get<std::string>()] = a["id"];
  }
  Splitter check(pattern, path + ": the split pattern");  // refuses a pattern PCRE2 cannot compile
  return tokenizer_from_spelled(vocab, merges, pattern, path + " (model.vocab + added_tokens)", path + " (model.merges)",
                                kHint, {});
}

}  // namespace kiln::tok
