// safetensors writer and reader. Tensors are streamed straight between the file and tensor
// memory (one copy each way, nothing buffered whole), so a 2 GB d20 checkpoint needs no second
// 2 GB in RAM. Every check on a file a user hands us throws kiln::Error naming file and tensor.
#include "model/safetensors.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace kiln::model {

namespace {

struct DtypeName {
  torch::ScalarType type;
  const char* name;
};
// The dtype strings of the safetensors format.
constexpr DtypeName kDtypes[] = {
    {torch::kFloat32, "F32"}, {torch::kBFloat16, "BF16"}, {torch::kFloat16, "F16"}, {torch::kFloat64, "F64"},
    {torch::kInt64, "I64"},   {torch::kInt32, "I32"},     {torch::kInt16, "I16"},   {torch::kInt8, "I8"},
    {torch::kUInt8, "U8"},    {torch::kBool, "BOOL"},
};

const char* dtype_name(torch::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  TORCH_CHECK(false, "save_safetensors: unsupported dtype ", t);
}

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  std::vector<torch::Tensor> cpu;
  cpu.reserve(tensors.size());
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    TORCH_CHECK(t.defined(), "save_safetensors: tensor '", name, "' is undefined");
    TORCH_CHECK(!header.contains(name), "save_safetensors: duplicate tensor name '", name, "'");
    // A detached contiguous CPU view; copies only when the tensor is elsewhere or strided.
    auto c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = uint64_t(c.numel()) * c.element_size();
    header[name] = {{"dtype", dtype_name(c.scalar_type())}, {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    cpu.push_back(std::move(c));
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // align the data to 8 bytes, as the Python package does
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error("cannot open '" + path + "' for writing", "check that the directory exists and is writable");
  const uint64_t hlen = h.size();  // little-endian on every platform kiln targets (x86-64, aarch64)
  f.write(reinterpret_cast<const char*>(&hlen), 8);
  f.write(h.data(), std::streamsize(h.size()));
  for (const auto& c : cpu)
    f.write(static_cast<const char*>(c.data_ptr()), std::streamsize(uint64_t(c.numel()) * c.element_size()));
  f.flush();
  if (!f) throw Error("writing '" + path + "' failed", "check free disk space");
}

std::map<std::string, torch::Tensor> load_safetensors(const std::string& path,
                                                      std::map<std::string, std::string>* metadata) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open safetensors file '" + path + "'", "check the path");
  std::error_code ec;
  const uint64_t fsize = std::filesystem::file_size(path, ec);
  auto bad = [&](const std::string& what) {
    return Error("safetensors file '" + path + "': " + what, "the file is truncated or not a safetensors file");
  };
  uint64_t hlen = 0;
  if (ec || fsize < 8 || !f.read(reinterpret_cast<char*>(&hlen), 8)) throw bad("shorter than its 8-byte header length");
  if (hlen > fsize - 8 || hlen > (uint64_t(100) << 20)) throw bad("header length " + std::to_string(hlen) + " is invalid");
  std::string h(hlen, '\0');
  if (!f.read(h.data(), std::streamsize(hlen))) throw bad("header is truncated");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(h);
  } catch (const std::exception& e) {
    throw bad(std::string("header is not JSON (") + e.what() + ")");
  }
  if (!header.is_object()) throw bad("header is not a JSON object");
  const uint64_t data_start = 8 + hlen, data_size = fsize - data_start;
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") {
      if (metadata && e.is_object())
        for (const auto& [k, v] : e.items()) (*metadata)[k] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    auto bad_t = [&](const std::string& what) { return bad("tensor '" + name + "': " + what); };
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      throw bad_t("entry lacks dtype, shape or data_offsets");
    std::optional<torch::ScalarType> type;
    const std::string dn = e["dtype"].is_string() ? e["dtype"].get<std::string>() : "?";
    for (const auto& d : kDtypes)
      if (dn == d.name) type = d.type;
    if (!type) throw bad_t("unsupported dtype '" + dn + "'");
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (const auto& s : e["shape"]) {
      if (!s.is_number_integer() || s.get<int64_t>() < 0) throw bad_t("bad shape " + e["shape"].dump());
      shape.push_back(s.get<int64_t>());
      numel *= uint64_t(shape.back());
    }
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad_t("bad data_offsets " + off.dump());
    const uint64_t b = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    auto t = torch::empty(shape, torch::TensorOptions().dtype(*type));
    const uint64_t nbytes = numel * t.element_size();
    if (end < b || end - b != nbytes)
      throw bad_t("data_offsets [" + std::to_string(b) + ", " + std::to_string(end) + ") do not hold shape " +
                  e["shape"].dump() + " of " + dn);
    if (end > data_size)
      throw bad_t("data ends at byte " + std::to_string(end) + " but the file holds only " +
                  std::to_string(data_size) + " data bytes");
    f.seekg(std::streamoff(data_start + b));
    if (nbytes > 0 && !f.read(static_cast<char*>(t.data_ptr()), std::streamsize(nbytes))) throw bad_t("read failed");
    out.emplace(name, std::move(t));
  }
  return out;
}

NamedTensors named_parameters_of(const torch::nn::Module& m) {
  NamedTensors out;
  for (const auto& item : m.named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

void load_safetensors_into(const std::string& path, const NamedTensors& dst,
                           std::map<std::string, std::string>* metadata) {
  auto src = load_safetensors(path, metadata);
  torch::NoGradGuard ng;
  for (const auto& [name, t] : dst) {
    auto it = src.find(name);
    if (it == src.end())
      throw Error("safetensors file '" + path + "' has no tensor '" + name + "'",
                  "the file was written for a different model or config");
    if (it->second.sizes() != t.sizes())
      throw Error("safetensors file '" + path + "': tensor '" + name + "' has shape " +
                      c10::str(it->second.sizes()) + " but the model expects " + c10::str(t.sizes()),
                  "the file was written for a different model or config");
    t.copy_(it->second);  // converts dtype and device
    src.erase(it);
  }
  if (!src.empty())
    throw Error("safetensors file '" + path + "' holds tensor '" + src.begin()->first + "' that the model lacks",
                "the file was written for a different model or config");
}

}  // namespace kiln::model
