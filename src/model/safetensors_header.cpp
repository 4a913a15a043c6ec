// safetensors header validation (see safetensors_header.h). Every number from the file is checked
// before it sizes anything: header length against the file, each shape's element count and byte
// size for 64-bit overflow, offsets against the shape and the data section, no overlaps.
#include "model/safetensors_header.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace kiln::model {

namespace {
struct DtypeSize {
  const char* name;
  size_t size;
};
constexpr DtypeSize kDtypeSizes[] = {{"F32", 4}, {"BF16", 2}, {"F16", 2}, {"F64", 8}, {"I64", 8},
                                     {"I32", 4}, {"I16", 2},   {"I8", 1},  {"U8", 1},  {"BOOL", 1}};
constexpr uint64_t kMaxHeader = uint64_t(100) << 20;
}  // namespace

SafetensorsHeader parse_safetensors_header(const std::string& path, const std::string& prefix, uint64_t fsize) {
  auto bad = [&](const std::string& what) {
    return Error("safetensors file '" + path + "': " + what, "the file is truncated or not a safetensors file");
  };
  uint64_t hlen = 0;
  if (fsize < 8 || prefix.size() < 8) throw bad("shorter than its 8-byte header length");
  std::memcpy(&hlen, prefix.data(), 8);  // little-endian on every platform kiln targets
  if (hlen > fsize - 8 || hlen > kMaxHeader) throw bad("header length " + std::to_string(hlen) + " is invalid");
  if (prefix.size() < 8 + hlen) throw bad("header is truncated");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(prefix.begin() + 8, prefix.begin() + std::ptrdiff_t(8 + hlen));
  } catch (const std::exception& e) {
    throw bad(std::string("header is not JSON (") + e.what() + ")");
  }
  if (!header.is_object()) throw bad("header is not a JSON object");
  SafetensorsHeader h;
  h.data_start = 8 + hlen;
  const uint64_t data_size = fsize - h.data_start;
  for (const auto& item : header.items()) {
    const std::string& name = item.key();
    const auto& e = item.value();
    if (name == "__metadata__") {
      if (e.is_object())
        for (const auto& m : e.items()) h.metadata[m.key()] = m.value().is_string() ? m.value().get<std::string>() : m.value().dump();
      continue;
    }
    auto bad_t = [&](const std::string& what) { return bad("tensor '" + name + "': " + what); };
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      throw bad_t("entry lacks dtype, shape or data_offsets");
    SafetensorsEntry t;
    t.name = name;
    t.dtype = e["dtype"].is_string() ? e["dtype"].get<std::string>() : "?";
    for (const auto& d : kDtypeSizes)
      if (t.dtype == d.name) t.element_size = d.size;
    if (t.element_size == 0) throw bad_t("unsupported dtype '" + t.dtype + "'");
    const auto& shape = e["shape"];
    if (!shape.is_array() || shape.size() > 16) throw bad_t("bad shape " + shape.dump());
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& s : shape) {
      if (!s.is_number_integer() || s.get<int64_t>() < 0) throw bad_t("bad shape " + shape.dump());
      const uint64_t d = uint64_t(s.get<int64_t>());
      if (d != 0 && numel > (uint64_t(INT64_MAX) / d)) overflow = true;
      numel = overflow ? 0 : numel * d;
      t.shape.push_back(int64_t(d));
    }
    if (overflow || numel > uint64_t(INT64_MAX) / t.element_size)
      throw bad_t("shape " + shape.dump() + " has more elements than any file can hold");
    const uint64_t nbytes = numel * t.element_size;
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad_t("bad data_offsets " + off.dump());
    t.begin = off[0].get<uint64_t>();
    t.end = off[1].get<uint64_t>();
    if (t.end < t.begin || t.end - t.begin != nbytes)
      throw bad_t("data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + ") do not hold shape " +
                  shape.dump() + " of " + t.dtype);
    if (t.end > data_size)
      throw bad_t("data ends at byte " + std::to_string(t.end) + " but the file holds only " +
                  std::to_string(data_size) + " data bytes");
    h.entries.push_back(std::move(t));
  }
  // Byte ranges may not overlap: each tensor owns its bytes (the format's own rule).
  std::vector<const SafetensorsEntry*> by_off;
  for (const auto& t : h.entries) by_off.push_back(&t);
  std::sort(by_off.begin(), by_off.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_off.size(); ++i)
    if (by_off[i]->begin < by_off[i - 1]->end)
      throw bad("tensors '" + by_off[i - 1]->name + "' and '" + by_off[i]->name + "' overlap in the data section");
  return h;
}

SafetensorsHeader read_safetensors_header(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open safetensors file '" + path + "'", "check the path");
  std::error_code ec;
  const uint64_t fsize = std::filesystem::file_size(path, ec);
  if (ec) throw Error("cannot read the size of safetensors file '" + path + "'", "check the path");
  std::string prefix(8, '\0');
  if (!f.read(prefix.data(), 8)) prefix.clear();
  uint64_t hlen = 0;
  if (prefix.size() == 8) std::memcpy(&hlen, prefix.data(), 8);
  if (prefix.size() == 8 && fsize >= 8 && hlen <= fsize - 8 && hlen <= kMaxHeader) {
    prefix.resize(8 + hlen);
    if (!f.read(prefix.data() + 8, std::streamsize(hlen))) prefix.resize(8 + size_t(f.gcount()));
  }
  return parse_safetensors_header(path, prefix, fsize);
}

}  // namespace kiln::model
