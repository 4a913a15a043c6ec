// One fuzz target per parser of a file a user hands kiln: YAML config, tokenizer JSON, HDF5 shard
// (attributes, dataset types and values), safetensors header, checkpoint meta.json, chat JSONL,
// GPT-2's encoder.json + vocab.bpe, and the body of a request to ./serve (from the network; also with a
// value nested up to 2^20 deep inserted anywhere).
// Each takes arbitrary bytes; the only allowed failure is kiln::Error (the driver checks that).
#include "fuzz.h"

#include <hdf5.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/config.h"
#include "core/json_file.h"
#include "data/shard.h"
#include "data/shard_h5.h"
#include "model/safetensors_header.h"
#include "serve/request.h"
#include "tokenizer/chat.h"
#include "tokenizer/gpt2_files.h"
#include "tokenizer/split.h"
#include "tokenizer/tokenizer.h"

namespace kiln::fuzz {
namespace {

std::string scratch(const char* name) {
  static const std::string dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("kiln_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d.string();
  }();
  return dir + "/" + name;
}

void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

void config(std::string_view in) { load_config_text(std::string(in), "fuzz.yaml"); }

void tokenizer(std::string_view in) {
  const std::string p = scratch("tok.json");
  write_file(p, in);
  auto t = tok::Tokenizer::load(p);
  t.decode(t.encode("hello world, 12345 fuzz"));  // a loaded tokenizer must also work
}

void safetensors(std::string_view in) {
  const std::string p = scratch("x.safetensors");
  write_file(p, in);
  model::read_safetensors_header(p);
}

// What checkpoint readers take from meta.json: step, world size and the embedded config.
void meta_json(std::string_view in) {
  const std::string p = scratch("meta.json");
  write_file(p, in);
  auto m = read_json_file(p);
  json_get<int64_t>(m, "step", p);
  json_get<int>(m, "world_size", p);
  json_get<nlohmann::json>(m, "crc32", p);
  load_config_text(json_get<std::string>(m, "config", p), p + " (config)");
}

void chat_jsonl(std::string_view in) {
  static const tok::Tokenizer t = tok::Tokenizer::from_merges({{'a', 'b'}, {'c', 'd'}, {256, 257}});
  size_t line = 0, pos = 0;
  while (pos < in.size()) {
    size_t e = in.find('\n', pos);
    if (e == std::string_view::npos) e = in.size();
    std::string_view l = in.substr(pos, e - pos);
    pos = e + 1;
    ++line;
    nlohmann::json rec;
    try {
      rec = nlohmann::json::parse(l);
    } catch (const nlohmann::json::exception& ex) {  // ./prepare's own wrapping of parse errors
      throw Error(std::string("line ") + std::to_string(line) + ": not JSON: " + ex.what());
    }
    tok::render_conversation(t, tok::conversation_from_json(rec, "fuzz.jsonl:" + std::to_string(line)), 64);
  }
}

// Adversarial merges: the bytes choose a merge list (each pair of bytes: which earlier tokens to
// join, mostly the newest one with itself or a neighbour, so token lengths grow fast), written
// as a well-formed tokenizer file. The loader must refuse, with kiln::Error, any list whose
// implied token lengths pass the caps; accepting one is a bug (std::logic_error). Chains are
// capped at 26 merges so that even a loader without the check stays within ~200 MB.
void tokenizer_merges(std::string_view in) {
  std::vector<std::pair<uint32_t, uint32_t>> merges;
  std::vector<uint64_t> len(256, 1);
  for (size_t i = 0; i + 1 < in.size() && merges.size() < 26; i += 2) {
    const uint32_t id = 256 + uint32_t(merges.size()), x = uint8_t(in[i]), y = uint8_t(in[i + 1]);
    auto pick = [&](uint32_t v) { return v % 4 ? id - 1 - std::min<uint32_t>(id - 1, (v / 4) % 3) : v % id; };
    merges.emplace_back(pick(x), pick(y));
    len.push_back(len[merges.back().first] + len[merges.back().second]);
  }
  uint64_t longest = 0, total = 0;
  for (uint64_t l : len) longest = std::max(longest, l), total += l;
  nlohmann::ordered_json specials = {{"<|bos|>", 256 + merges.size()}};
  nlohmann::ordered_json j = {{"format", "kiln.tokenizer"}, {"format_version", 1},
                              {"pattern", tok::kGpt4Pattern}, {"vocab_size", 257 + merges.size()},
                              {"special_tokens", specials}, {"merges", merges},
                              {"token_bytes", std::vector<int>(257 + merges.size(), 1)}};
  const std::string p = scratch("tok_merges.json");
  write_file(p, j.dump());
  auto t = tok::Tokenizer::load(p);  // kiln::Error when refused
  if (longest > tok::kMaxTokenBytes || total > tok::kMaxVocabBytes)
    throw std::logic_error("accepted merges that make a token of " + std::to_string(longest) + " bytes (" +
                           std::to_string(total) + " in all)");
  t.decode(t.encode("hello world, 12345 fuzz"));
}

// GPT-2's tokenizer pair: the input is split at its first NUL into encoder.json and vocab.bpe.
void gpt2_files(std::string_view in) {
  const size_t cut = in.find('\0');
  const std::string enc = scratch("encoder.json"), bpe = scratch("vocab.bpe");
  write_file(enc, in.substr(0, cut));
  write_file(bpe, cut == std::string_view::npos ? std::string_view() : in.substr(cut + 1));
  auto t = tok::import_gpt2_files(enc, bpe);
  t.decode(t.encode("hello world, 12345 fuzz"));
}

// A request body of POST /v1/chat/completions (first byte % 4 == 0), /v1/completions (1),
// /tokenize (2) or /detokenize (3). A refusal must be a 4xx ApiError (the server answers it as
// such); a 5xx or any other exception is a bug.
void serve_request(std::string_view in) {
  static const tok::Tokenizer t = tok::Tokenizer::from_merges({{'a', 'b'}, {'c', 'd'}, {256, 257}});
  serve::Limits L;
  L.context = 256, L.max_n = 4, L.max_tokens = 200, L.default_max_tokens = 16;
  const int which = in.empty() ? 0 : uint8_t(in[0]) % 4;
  const std::string body(in.empty() ? in : in.substr(1));
  try {
    if (which == 0) serve::parse_chat_request(body, t, L);
    else if (which == 1) serve::parse_completion_request(body, t, L);
    else if (which == 2) serve::parse_tokenize_request(body, t, L);
    else t.decode(serve::parse_detokenize_request(body, t));
  } catch (const serve::ApiError& e) {
    if (e.status < 400 || e.status > 499) throw std::runtime_error("ApiError with status " + std::to_string(e.status));
    throw Error(e.what());
  }
}

// Request bodies at depth (issue 19: a prompt nested 200,000 deep crashed ./serve). A hash of the
// input picks the depth (a quarter of them at most 40, around the limit of 32; the rest up to
// 2^20), the brackets ('[' or '{"a":') and whether they close; then half of the inputs put the
// nested value in one field of a request (every field either endpoint reads, and an unknown one),
// the other half insert it anywhere in the input (a request body). Any 4xx is an answer here (most
// are refusals by design); a crash (a stack overflow under ASan), a 5xx or another exception is a bug.
void serve_request_deep(std::string_view in) {
  static const char* fields[] = {  // '@' is the nested value; first char: 'c' chat, 'p' completion
      R"(p{"prompt": @, "max_tokens": 2})", R"(p{"prompt": [@]})", R"(p{"prompt": "a", "stop": @})",
      R"(p{"prompt": "a", "stop": [@, "x"]})", R"(p{"prompt": "a", "temperature": @})",
      R"(p{"prompt": "a", "max_tokens": @})", R"(p{"prompt": "a", "seed": @})", R"(p{"prompt": "a", "n": @})",
      R"(p{"prompt": "a", "unknown": @})", R"(c{"messages": @})", R"(c{"messages": [@]})",
      R"(c{"messages": [{"role": "user", "content": @}]})", R"(c{"messages": [{"role": "user", "content": [@]}]})",
      R"(c{"messages": [{"role": "user", "content": [{"type": "text", "text": @}]}]})",
      R"(c{"messages": [{"role": "user", "content": [{"type": @, "text": "x"}]}]})",
      R"(c{"messages": [{"role": @, "content": "x"}]})",
      R"(c{"messages": [{"role": "user", "content": "x"}], "stream": true, "stream_options": @})",
      R"(c{"messages": [{"role": "user", "content": "x"}], "stream": true, "stream_options": {"include_usage": @}})"};
  uint64_t h = 1469598103934665603ULL;  // FNV-1a: the same inputs every run
  for (char c : in) h = (h ^ uint8_t(c)) * 1099511628211ULL;
  const size_t depth = h % 4 == 0 ? (h >> 2) % 41 : (h >> 2) % (1u << 20);
  const bool objects = (h >> 24) & 1, closed = (h >> 25) & 1;
  std::string nested;
  nested.reserve(depth * 6 + 2);
  for (size_t k = 0; k < depth; ++k) nested += objects ? "{\"a\":" : "[";
  nested += "1";
  if (closed) nested.append(depth, objects ? '}' : ']');
  std::string request;  // first byte: the endpoint, as serve_request
  if ((h >> 26) & 1) {
    const std::string f = fields[(h >> 27) % (sizeof fields / sizeof *fields)];
    request = std::string(1, f[0] == 'c' ? '\0' : '\1') + f.substr(1);
    request.replace(request.find('@'), 1, nested);
  } else {
    std::string body(in.empty() ? in : in.substr(1));
    body.insert((h >> 27) % (body.size() + 1), nested);
    request = std::string(in.empty() ? in : in.substr(0, 1)) + body;
  }
  try {
    serve_request(request);
  } catch (const Error&) {  // a 4xx
  }
}

// HDF5 shards: the bytes choose what a (possibly hostile) tool writes, attribute by attribute,
// through the HDF5 library; then ShardReader opens it and reads everything a loader reads.
struct Bytes {
  std::string_view s;
  size_t i = 0;
  uint64_t next(int n = 1) {
    uint64_t v = 0;
    for (int k = 0; k < n; ++k) v = (v << 8) | (i < s.size() ? uint8_t(s[i++]) : 0);
    return v;
  }
};

void shard(std::string_view in) {
  const std::string p = scratch("shard.h5");
  Bytes b{in};
  const uint64_t n_tokens = b.next() % 40, n_docs = b.next() % 6;
  {
    std::lock_guard<std::mutex> g(data::hdf5_mutex());
    data::h5::quiet();
    data::h5::Hid f(H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
    auto u64 = [&](const char* name, uint64_t dflt) {
      switch (b.next() % 6) {
        case 0: return;                                                   // missing
        case 1: data::h5::write_attr_str(f.get(), name, "12"); return;    // wrong kind
        case 2: data::h5::write_attr_u64(f.get(), name, b.next(8)); return;  // any value
        case 3: data::h5::write_attr_u64(f.get(), name, dflt + 1); return;  // off by one
        default: data::h5::write_attr_u64(f.get(), name, dflt);
      }
    };
    auto str = [&](const char* name, const std::string& dflt) {
      switch (b.next() % 5) {
        case 0: return;
        case 1: data::h5::write_attr_u64(f.get(), name, 7); return;
        case 2: data::h5::write_attr_str(f.get(), name, std::string(b.next() % 300, 'x')); return;
        default: data::h5::write_attr_str(f.get(), name, dflt);
      }
    };
    const uint64_t vocab = 1 + b.next() % 300;
    str("format", "kiln.tokens");
    u64("format_version", 1);
    u64("vocab_size", vocab);
    u64("bos_id", vocab - 1);
    u64("num_tokens", n_tokens);
    u64("num_docs", n_docs);
    str("tokenizer_sha256", "abc");
    str("source", "fuzz");
    str("created_by", "fuzz");
    const hid_t types[] = {H5T_STD_U16LE, H5T_STD_U32LE, H5T_STD_I32LE, H5T_IEEE_F32LE, H5T_STD_U8LE, H5T_STD_U64LE};
    auto dataset = [&](const char* name, hid_t type, hsize_t n, const std::vector<uint64_t>& v) {
      if (b.next() % 8 == 0) return;  // missing
      hsize_t len = b.next() % 8 == 0 ? n + b.next() % 3 : n;
      data::h5::Hid sp(H5Screate_simple(1, &len, nullptr), H5Sclose);
      data::h5::Hid ds(H5Dcreate2(f.get(), name, type, sp.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
      std::vector<uint64_t> w(len);
      for (size_t i = 0; i < len; ++i) w[i] = i < v.size() ? v[i] : b.next(4);
      if (len) H5Dwrite(ds.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, w.data());
    };
    std::vector<uint64_t> toks(n_tokens), offs(n_docs + 1), mask(n_tokens);
    for (auto& t : toks) t = b.next() % 8 == 0 ? b.next(4) : b.next() % vocab;
    for (size_t i = 0; i <= n_docs; ++i) offs[i] = i == n_docs ? n_tokens : (b.next() % 4 == 0 ? b.next(2) : i);
    for (auto& m : mask) m = b.next() % 2;
    dataset("tokens", b.next() % 4 == 0 ? types[b.next() % 6] : H5T_STD_U16LE, n_tokens, toks);
    dataset("doc_offsets", b.next() % 4 == 0 ? types[b.next() % 6] : H5T_STD_U64LE, n_docs + 1, offs);
    if (b.next() % 2) dataset("loss_mask", H5T_STD_U8LE, n_tokens, mask);
  }
  data::ShardReader r(p, b.next() % 4 == 0 ? "abc" : "", b.next() % 4 == 0 ? int64_t(b.next() % 300) : -1);
  const auto& info = r.info();
  std::vector<uint32_t> buf(16);
  for (uint64_t at = 0; at < info.num_tokens; at += 16) {
    const uint64_t n = std::min<uint64_t>(16, info.num_tokens - at);
    r.read_tokens(at, n, buf.data());
    if (info.has_loss_mask) {
      std::vector<uint8_t> m(n);
      r.read_loss_mask(at, n, m.data());
    }
  }
  r.doc_offsets();
}

}  // namespace

const std::vector<Target>& targets() {
  static const std::vector<Target> t = {{"yaml_config", config, 5000},         {"tokenizer_json", tokenizer, 2000},
                                        {"hdf5_shard", shard, 600},            {"safetensors", safetensors, 3000},
                                        {"checkpoint_meta", meta_json, 2000},  {"chat_jsonl", chat_jsonl, 5000},
                                        {"gpt2_files", gpt2_files, 1500},      {"serve_request", serve_request, 5000},
                                        {"serve_request_deep", serve_request_deep, 300},
                                        {"tokenizer_merges", tokenizer_merges, 2000}};
  return t;
}

}  // namespace kiln::fuzz
