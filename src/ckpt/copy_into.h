// The one place where named tensors are copied into a model's parameters: a checkpoint's weights
// (--resume, init.from, load_model), a Hugging Face import and a safetensors file all come through
// copy_into, so a missing, extra or misshapen tensor is refused the same way everywhere.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

#include "model/safetensors.h"

namespace kiln::ckpt {

enum class Strictness {
  Exact,        // the source holds exactly the targets' names, each with the target's shape
  IgnoreExtra,  // every target is there with its shape; source tensors that no target names are ignored
};

// Copies src[name] into each tensor of `dst` (dtype and device converted, no autograd). Throws
// kiln::Error naming `source` (a file or directory) and the tensor when the sources do not match.
void copy_into(const model::NamedTensors& dst, const std::map<std::string, torch::Tensor>& src,
               Strictness strictness, const std::string& source);

// Reads the safetensors file `path` into existing tensors by name (Strictness::Exact).
void load_safetensors_into(const std::string& path, const model::NamedTensors& dst,
                           std::map<std::string, std::string>* metadata = nullptr);

}  // namespace kiln::ckpt
