// safetensors read/write (the format Hugging Face's `safetensors` package reads): 8-byte
// little-endian header length, a JSON header of {name: {dtype, shape, data_offsets}} plus
// optional "__metadata__" strings, then the raw little-endian tensor bytes.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace kiln::model {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Writes CPU copies of the tensors (fp32, bf16, fp16, int64, int32, uint8, ...). Not atomic by
// itself: callers write to a temporary name and rename.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// Which tensors of a file to read, by name (empty: all).
using TensorFilter = std::function<bool(const std::string& name)>;

// Reads every tensor (or those `keep` accepts: the others are never read, only their header entry)
// to CPU; throws kiln::Error naming the file on a malformed or truncated file. `bytes_read`, when
// given, grows by the tensor bytes read.
std::map<std::string, torch::Tensor> load_safetensors(const std::string& path,
                                                      std::map<std::string, std::string>* metadata = nullptr,
                                                      const TensorFilter& keep = nullptr, int64_t* bytes_read = nullptr);

// A module's parameters as NamedTensors (same tensors, no copies), e.g. for save_safetensors.
NamedTensors named_parameters_of(const torch::nn::Module& m);

}  // namespace kiln::model
