// safetensors writer and reader. Tensors are streamed straight between the file and tensor
// memory (one copy each way, nothing buffered whole), so a 2 GB d20 checkpoint needs no second
// 2 GB in RAM. Every check on a file a user hands us throws kiln::Error naming file and tensor.
#include "model/safetensors.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/safetensors_header.h"

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
                                                      std::map<std::string, std::string>* metadata,
                                                      const TensorFilter& keep, int64_t* bytes_read) {
  // The whole header is validated first (safetensors_header.cpp): nothing below allocates from
  // an unchecked number.
  const SafetensorsHeader h = read_safetensors_header(path);
  if (metadata)
    for (const auto& [k, v] : h.metadata) (*metadata)[k] = v;
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open safetensors file '" + path + "'", "check the path");
  std::map<std::string, torch::Tensor> out;
  for (const auto& e : h.entries) {
    if (keep && !keep(e.name)) continue;
    torch::ScalarType type = torch::kFloat32;
    for (const auto& d : kDtypes)
      if (e.dtype == d.name) type = d.type;
    auto t = torch::empty(e.shape, torch::TensorOptions().dtype(type));
    const uint64_t nbytes = e.end - e.begin;
    f.seekg(std::streamoff(h.data_start + e.begin));
    if (nbytes > 0 && !f.read(static_cast<char*>(t.data_ptr()), std::streamsize(nbytes)))
      throw Error("safetensors file '" + path + "': tensor '" + e.name + "': read failed",
                  "the file is truncated or not a safetensors file");
    if (bytes_read) *bytes_read += int64_t(nbytes);
    out.emplace(e.name, std::move(t));
  }
  return out;
}

NamedTensors named_parameters_of(const torch::nn::Module& m) {
  NamedTensors out;
  for (const auto& item : m.named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

}  // namespace kiln::model
