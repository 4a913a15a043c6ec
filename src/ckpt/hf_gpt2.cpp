// See hf_gpt2.h. config.json is checked field by field against what GPT2Impl computes, so an
// imported model either runs exactly as transformers' GPT2LMHeadModel or is refused with the field.
#include "ckpt/hf_gpt2.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "core/json_file.h"

namespace kiln::ckpt {

using model::GPT2Impl;

namespace {

constexpr const char* kPrefix = "transformer.";

bool is_conv1d(const std::string& name) {
  return name.ends_with("c_attn.weight") || name.ends_with("c_proj.weight") || name.ends_with("c_fc.weight");
}

}  // namespace

GPT2Config read_hf_gpt2_config(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  const std::string hint = "kiln imports Hugging Face GPT-2 checkpoints (model_type \"gpt2\", GPT2LMHeadModel)";
  auto get = [&](const char* key, auto fallback) {
    using T = decltype(fallback);
    if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
    return json_get<T>(j, key, path);
  };
  if (get("model_type", std::string()) != "gpt2")
    throw Error("[import] " + path + ": model_type is " + (j.contains("model_type") ? j["model_type"].dump() : "missing") +
                    ", not \"gpt2\"",
                hint);
  GPT2Config c;
  c.n_layer = get("n_layer", int64_t(12));
  c.n_embd = get("n_embd", int64_t(768));
  c.n_head = get("n_head", int64_t(12));
  c.n_ctx = get("n_positions", int64_t(1024));
  c.seq_len = c.n_ctx;
  c.vocab_size = get("vocab_size", int64_t(50257));
  c.layer_norm_eps = get("layer_norm_epsilon", 1e-5);
  if (c.n_layer <= 0 || c.n_embd <= 0 || c.n_head <= 0 || c.n_embd % c.n_head != 0 || c.n_ctx <= 0 || c.vocab_size <= 0)
    throw Error("[import] " + path + ": n_layer/n_embd/n_head/n_positions/vocab_size = " + std::to_string(c.n_layer) + "/" +
                    std::to_string(c.n_embd) + "/" + std::to_string(c.n_head) + "/" + std::to_string(c.n_ctx) + "/" +
                    std::to_string(c.vocab_size) + " is not a valid shape",
                "n_head must divide n_embd; every size must be positive");
  auto require = [&](const char* key, const nlohmann::json& want, const nlohmann::json& dflt) {
    const nlohmann::json have = j.contains(key) && !j[key].is_null() ? j[key] : dflt;
    if (have != want)
      throw Error("[import] " + path + ": " + key + " = " + have.dump() + "; kiln's GPT-2 runs " + want.dump(),
                  hint + "; this variant is not supported");
  };
  require("activation_function", "gelu_new", "gelu_new");
  require("layer_norm_epsilon", 1e-5, 1e-5);
  require("tie_word_embeddings", true, true);
  require("scale_attn_weights", true, true);
  require("scale_attn_by_inverse_layer_idx", false, false);
  require("reorder_and_upcast_attn", false, false);
  require("add_cross_attention", false, false);
  if (j.contains("n_inner") && !j["n_inner"].is_null() && j["n_inner"] != 4 * c.n_embd)
    throw Error("[import] " + path + ": n_inner = " + j["n_inner"].dump() + "; kiln's GPT-2 MLP is 4 * n_embd = " +
                    std::to_string(4 * c.n_embd),
                hint);
  return c;
}

nlohmann::ordered_json hf_gpt2_config(const GPT2Config& c, int64_t eos_id) {
  return {{"architectures", nlohmann::ordered_json::array({"GPT2LMHeadModel"})},
          {"model_type", "gpt2"},
          {"activation_function", "gelu_new"},
          {"n_layer", c.n_layer},
          {"n_embd", c.n_embd},
          {"n_head", c.n_head},
          {"n_inner", nullptr},
          {"n_positions", c.n_ctx},
          {"n_ctx", c.n_ctx},
          {"vocab_size", c.vocab_size},
          {"layer_norm_epsilon", c.layer_norm_eps},
          {"attn_pdrop", c.dropout},
          {"embd_pdrop", c.dropout},
          {"resid_pdrop", c.dropout},
          {"initializer_range", 0.02},
          {"scale_attn_weights", true},
          {"scale_attn_by_inverse_layer_idx", false},
          {"reorder_and_upcast_attn", false},
          {"tie_word_embeddings", true},
          {"bos_token_id", eos_id},
          {"eos_token_id", eos_id},
          {"torch_dtype", "float32"}};
}

std::map<std::string, torch::Tensor> hf_to_kiln(const std::map<std::string, torch::Tensor>& hf,
                                                const GPT2Config& cfg, const std::string& file) {
  // The expected kiln names and shapes, from the model itself (meta device: no memory).
  GPT2Impl shape(cfg, torch::kMeta);
  std::map<std::string, std::vector<int64_t>> want;
  for (const auto& p : shape.named_parameters()) want[p.key()] = p.value().sizes().vec();
  std::map<std::string, torch::Tensor> out;
  torch::Tensor head;
  for (const auto& [name, t] : hf) {
    if (name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias")) continue;  // causal-mask buffers
    if (name == "lm_head.weight") {
      head = t;
      continue;
    }
    const std::string k = name.starts_with(kPrefix) ? name : kPrefix + name;
    auto it = want.find(k);
    if (it == want.end())
      throw Error("[import] " + file + ": unexpected tensor '" + name + "'",
                  "not a GPT-2 checkpoint, or one with parts kiln's GPT-2 does not have");
    if (!t.is_floating_point())
      throw Error("[import] " + file + ": tensor '" + name + "' has dtype " + std::string(c10::toString(t.scalar_type())),
                  "GPT-2 weights are floating point");
    torch::Tensor v = (is_conv1d(k) && t.dim() == 2 ? t.t() : t).to(torch::kFloat32).contiguous();
    if (v.sizes().vec() != it->second) {
      std::vector<int64_t> hf_shape = it->second;  // Hugging Face's layout: Conv1D is (in, out)
      if (is_conv1d(k)) std::reverse(hf_shape.begin(), hf_shape.end());
      std::ostringstream s;
      s << "[import] " << file << ": tensor '" << name << "' has shape " << t.sizes() << ", config.json implies "
        << torch::IntArrayRef(hf_shape);
      throw Error(s.str(), "config.json and model.safetensors do not belong together");
    }
    out[k] = v;
  }
  for (const auto& [k, s] : want)
    if (!out.count(k))
      throw Error("[import] " + file + ": tensor '" + k + "' (or '" + k.substr(std::string(kPrefix).size()) + "') is missing",
                  "the file is incomplete or not a GPT2LMHeadModel checkpoint");
  if (head.defined() && !(head.sizes() == out["transformer.wte.weight"].sizes() &&
                          torch::equal(head.to(torch::kFloat32), out["transformer.wte.weight"])))
    throw Error("[import] " + file + ": lm_head.weight differs from transformer.wte.weight",
                "kiln's GPT-2 ties the head to the token embedding (tie_word_embeddings = true)");
  return out;
}

NamedTensors kiln_to_hf(const NamedTensors& params) {
  NamedTensors out;
  for (const auto& [name, t] : params)
    out.emplace_back(name, (is_conv1d(name) ? t.t() : t).detach().to(torch::kCPU, torch::kFloat32).contiguous());
  return out;
}

}  // namespace kiln::ckpt
