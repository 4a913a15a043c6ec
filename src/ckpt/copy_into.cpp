// copy_into; see copy_into.h.
#include "ckpt/copy_into.h"

#include "core/error.h"

namespace kiln::ckpt {

void copy_into(const model::NamedTensors& dst, const std::map<std::string, torch::Tensor>& src,
               Strictness strictness, const std::string& source) {
  const char* hint = "it was written for a different model or config";
  torch::NoGradGuard no_grad;
  size_t found = 0;
  for (const auto& [name, t] : dst) {
    auto it = src.find(name);
    if (it == src.end()) throw Error(source + " has no tensor '" + name + "'", hint);
    if (it->second.sizes() != t.sizes())
      throw Error(source + ": tensor '" + name + "' has shape " + c10::str(it->second.sizes()) +
                      " but the model expects " + c10::str(t.sizes()),
                  hint);
    t.copy_(it->second);  // converts dtype and device
    ++found;
  }
  if (strictness == Strictness::Exact && found != src.size())
    for (const auto& [name, t] : src) {
      bool wanted = false;
      for (const auto& d : dst) wanted = wanted || d.first == name;
      if (!wanted) throw Error(source + " holds tensor '" + name + "' that the model lacks", hint);
    }
}

void load_safetensors_into(const std::string& path, const model::NamedTensors& dst,
                           std::map<std::string, std::string>* metadata) {
  copy_into(dst, model::load_safetensors(path, metadata), Strictness::Exact, "safetensors file '" + path + "'");
}

}  // namespace kiln::ckpt
