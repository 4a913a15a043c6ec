// Valid inputs to start mutating from: the repository's configs, a small real tokenizer file, a
// safetensors file with three tensors, a checkpoint meta.json and chat records. The HDF5 target
// reads its input as choices, so any bytes are a seed there.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fuzz.h"
#include "tokenizer/gpt2_files.h"
#include "tokenizer/tokenizer.h"

namespace kiln::fuzz {
namespace {
std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
std::string safetensors_file() {
  nlohmann::ordered_json h = {{"__metadata__", {{"format", "pt"}}},
                              {"a", {{"dtype", "F32"}, {"shape", {2, 3}}, {"data_offsets", {0, 24}}}},
                              {"b", {{"dtype", "BF16"}, {"shape", {4}}, {"data_offsets", {24, 32}}}},
                              {"c", {{"dtype", "I64"}, {"shape", nlohmann::json::array()}, {"data_offsets", {32, 40}}}}};
  std::string s = h.dump();
  uint64_t n = s.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + s + std::string(40, '\x01');
}
}  // namespace

std::vector<std::string> seeds(const std::string& target, const std::string& source_dir) {
  std::vector<std::string> out;
  std::string tiny;
  if (std::filesystem::exists(source_dir + "/configs"))
    for (const auto& e : std::filesystem::directory_iterator(source_dir + "/configs"))
      if (e.path().extension() == ".yaml") {
        out.push_back(slurp(e.path()));
        if (e.path().filename() == "tiny.yaml") tiny = out.back();
      }
  if (target == "yaml_config") {
    out.push_back("run:\n  name: x\nmodel:\n  depth: 2\n  width: 64\n");
    return out;
  }
  out.clear();
  if (target == "tokenizer_json") {
    out.push_back(tok::Tokenizer::from_merges({{'a', 'b'}, {256, 'c'}, {' ', 't'}, {'h', 'e'}}).to_json());
    // A doubling chain under the caps (token 4096 bytes long), to mutate into one over them.
    std::vector<tok::Merge> chain = {{'a', 'a'}};
    for (uint32_t k = 0; k < 11; ++k) chain.emplace_back(256 + k, 256 + k);
    out.push_back(tok::Tokenizer::from_merges(chain).to_json());
  } else if (target == "tokenizer_merges") {
    // The newest token joined with itself, 15 times: a doubling chain to 32 KiB, under the caps
    // (seeds must load); the mutations lengthen it past them.
    out.push_back(std::string(30, '\x01'));
    // The newest token joined with the one before it, 12 times: Fibonacci lengths, all pairs new.
    std::string fib;
    for (int k = 0; k < 12; ++k) fib += "\x01\x05";
    out.push_back(fib);
  } else if (target == "safetensors") {
    out.push_back(safetensors_file());
  } else if (target == "checkpoint_meta") {
    nlohmann::json m = {{"format", "kiln.checkpoint"}, {"format_version", 2}, {"step", 12}, {"world_size", 1},
                        {"config", tiny.empty() ? "model:\n  depth: 2\n" : tiny},
                        {"crc32", {{"model.safetensors", 12345}}}};
    out.push_back(m.dump(2));
  } else if (target == "chat_jsonl") {
    out.push_back(R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "abcd"}]})");
    out.push_back(R"({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, )"
                  R"({"role": "assistant", "content": [{"type": "text", "text": "x"}, {"type": "python", "text": "1+1"}, )"
                  R"({"type": "python_output", "text": "2"}]}]})");
    out.push_back(R"({"question": "2+2?", "answer": "It is <<2+2=4>>4.\n#### 4"})");
  } else if (target == "gpt2_files") {  // 256 byte tokens + 3 merges + <|endoftext|>, NUL-separated
    nlohmann::ordered_json enc;
    for (int b = 0; b < 256; ++b) enc[tok::gpt2_byte_char(uint8_t(b))] = b;
    const std::string sp = tok::gpt2_byte_char(' ');
    enc["ab"] = 256, enc[sp + "a"] = 257, enc[sp + "ab"] = 258, enc["<|endoftext|>"] = 259;
    out.push_back(enc.dump() + '\0' + "#version: 0.2\na b\n" + sp + " a\n" + sp + "a b\n");
  } else if (target == "serve_request_deep") {  // the same bodies (the target nests into them)
    return seeds("serve_request", source_dir);
  } else if (target == "serve_request") {  // first byte % 4: chat, completion, tokenize, detokenize
    out.push_back(std::string(1, char(0)) +
                  R"({"model": "kiln", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},)"
                  R"( {"role": "assistant", "content": [{"type": "text", "text": "ab"}]}, {"role": "user", "content": "cd"}],)"
                  R"( "temperature": 0.7, "top_p": 0.9, "top_k": 40, "max_tokens": 20, "n": 2, "seed": 3, "stop": ["x", "yz"],)"
                  R"( "stream": true, "stream_options": {"include_usage": true}})");
    out.push_back(std::string(1, char(1)) + R"({"prompt": "abcd", "max_completion_tokens": 5, "stop": "d", "seed": -1})");
    out.push_back(std::string(1, char(1)) + R"({"prompt": [[256, 97], [98]], "echo": true, "logprobs": 3, "max_tokens": 0})");
    out.push_back(std::string(1, char(2)) + R"({"prompt": "<|bos|>ab", "add_special_tokens": false})");
    out.push_back(std::string(1, char(3)) + R"({"tokens": [97, 256, 98]})");
  } else {  // hdf5_shard: choices; a valid shard is mostly "default" choices
    out.push_back(std::string(200, char(23)));
    out.push_back(std::string(300, char(29)));
  }
  return out;
}

}  // namespace kiln::fuzz
