// See hf_nanochat.h. config.json is read key by key against what GPTImpl computes, so an imported
// model either runs exactly as transformers' NanoChatForCausalLM or is refused with the key.
#include "ckpt/hf_nanochat.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "core/json_file.h"

namespace kiln::ckpt {

using model::GPTConfig;
using model::NamedTensors;

namespace {

constexpr const char* kHint = "kiln imports transformers' NanoChat (model_type \"nanochat\", NanoChatForCausalLM)";

// kiln's per-block parameter names and transformers' (both under a layer index).
const std::pair<const char*, const char*> kBlockNames[] = {
    {"attn.c_q.weight", "self_attn.q_proj.weight"}, {"attn.c_k.weight", "self_attn.k_proj.weight"},
    {"attn.c_v.weight", "self_attn.v_proj.weight"}, {"attn.c_proj.weight", "self_attn.o_proj.weight"},
    {"mlp.c_fc.weight", "mlp.fc1.weight"},          {"mlp.c_proj.weight", "mlp.fc2.weight"}};

// transformers' name of kiln parameter `k`, or "" when NanoChat has none.
std::string hf_name(const std::string& k) {
  if (k == "transformer.wte.weight") return "model.embed_tokens.weight";
  if (k == "lm_head.weight") return "lm_head.weight";
  const std::string h = "transformer.h.";
  if (!k.starts_with(h)) return "";
  const size_t dot = k.find('.', h.size());
  if (dot == std::string::npos) return "";
  const std::string layer = k.substr(h.size(), dot - h.size()), rest = k.substr(dot + 1);
  for (const auto& [kiln, hf] : kBlockNames)
    if (rest == kiln) return "model.layers." + layer + "." + hf;
  return "";
}

bool is_vocab_rows(const std::string& k) { return k == "transformer.wte.weight" || k == "lm_head.weight"; }

double float32_eps() { return double(std::numeric_limits<float>::epsilon()); }

}  // namespace

GPTConfig read_hf_nanochat_config(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  if (!j.is_object()) throw Error("[import] " + path + " is not a JSON object", kHint);
  const std::string mt = j.contains("model_type") ? j["model_type"].dump() : "missing";
  if (j.value("model_type", nlohmann::json()) != "nanochat")
    throw Error("[import] " + path + ": model_type is " + mt + ", not \"nanochat\"",
                std::string(kHint) + "; a GPT-2 directory imports with ./import gpt2");
  auto has = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  // Absent keys take NanoChatConfig's defaults, as transformers would.
  auto get = [&](const char* key, auto fallback) {
    using T = decltype(fallback);
    return has(key) ? json_get<T>(j, key, path) : fallback;
  };
  auto refuse = [&](const std::string& key, const std::string& what) {
    return Error("[import] " + path + ": " + key + " " + what, std::string(kHint) + "; kiln cannot run this variant exactly");
  };
  GPTConfig c;
  c.n_layer = get("num_hidden_layers", int64_t(12));
  c.n_embd = get("hidden_size", int64_t(768));
  c.n_head = get("num_attention_heads", int64_t(6));
  c.n_kv_head = get("num_key_value_heads", c.n_head);
  c.seq_len = get("max_position_embeddings", int64_t(2048));
  c.vocab_size = get("vocab_size", int64_t(50304));
  for (const auto& [key, v] : {std::pair<const char*, int64_t>{"num_hidden_layers", c.n_layer}, {"hidden_size", c.n_embd},
                               {"num_attention_heads", c.n_head}, {"num_key_value_heads", c.n_kv_head},
                               {"max_position_embeddings", c.seq_len}, {"vocab_size", c.vocab_size}})
    if (v <= 0) throw refuse(key, "= " + std::to_string(v) + " must be positive");
  if (c.n_embd % c.n_head != 0)
    throw Error("[import] " + path + ": num_attention_heads = " + std::to_string(c.n_head) +
                    " does not divide hidden_size = " + std::to_string(c.n_embd),
                "the head count is inconsistent with the width; the file is damaged or not a NanoChat config");
  c.head_dim = c.n_embd / c.n_head;
  if (has("head_dim") && j["head_dim"] != c.head_dim)
    throw refuse("head_dim", "= " + j["head_dim"].dump() + " but hidden_size / num_attention_heads = " +
                                 std::to_string(c.head_dim) + " (kiln's head_dim)");
  if (c.n_head % c.n_kv_head != 0)
    throw Error("[import] " + path + ": num_key_value_heads = " + std::to_string(c.n_kv_head) +
                    " does not divide num_attention_heads = " + std::to_string(c.n_head),
                "the head counts are inconsistent; the file is damaged or not a NanoChat config");
  if (c.head_dim % 2 != 0) throw refuse("hidden_size / num_attention_heads", "= " + std::to_string(c.head_dim) + " is odd (rotary needs pairs)");
  c.padded_vocab_size = (c.vocab_size + 63) / 64 * 64;
  if (get("intermediate_size", int64_t(8192)) != 4 * c.n_embd)
    throw refuse("intermediate_size", "= " + std::to_string(get("intermediate_size", int64_t(8192))) +
                                          "; kiln's MLP is 4 * hidden_size = " + std::to_string(4 * c.n_embd));
  if (get("hidden_act", std::string("relu2")) != "relu2")
    throw refuse("hidden_act", "= \"" + get("hidden_act", std::string()) + "\"; kiln's MLP is relu2");
  if (get("attention_bias", false)) throw refuse("attention_bias", "is true; kiln's linears have no bias");
  if (get("tie_word_embeddings", false)) throw refuse("tie_word_embeddings", "is true; kiln's head is untied");
  // The RMSNorm epsilon: float32's (nanochat's F.rms_norm default) is kiln's default, written as 0.
  const double eps = get("rms_norm_eps", 1e-6);
  if (!(eps > 0 && eps <= 1)) throw refuse("rms_norm_eps", "= " + j["rms_norm_eps"].dump() + "; kiln's RMSNorm takes 0 < eps <= 1");
  c.norm_eps = eps == float32_eps() ? 0.0 : eps;
  // final_logit_softcapping: null = none (kiln's softcap 0).
  if (j.contains("final_logit_softcapping") && j["final_logit_softcapping"].is_null()) {
    c.softcap = 0.0;
  } else {
    c.softcap = get("final_logit_softcapping", 15.0);
    if (!(c.softcap > 0 && c.softcap <= 1e6))
      throw refuse("final_logit_softcapping", "= " + j["final_logit_softcapping"].dump() +
                                                  "; kiln softcaps with 0 < c <= 1e6, or none (null)");
  }
  // Rotary: transformers 5 keeps it in rope_parameters, 4.x in rope_theta / rope_scaling.
  c.rope_base = get("rope_theta", 10000.0);
  if (has("rope_scaling")) throw refuse("rope_scaling", "= " + j["rope_scaling"].dump() + "; kiln's rotary is unscaled");
  if (has("rope_parameters")) {
    const auto& r = j["rope_parameters"];
    if (!r.is_object()) throw refuse("rope_parameters", "is not an object");
    for (const auto& [key, v] : r.items()) {
      if (key == "rope_theta") {
        if (!v.is_number()) throw refuse("rope_parameters.rope_theta", "is not a number");
        c.rope_base = v.get<double>();
      } else if (key == "rope_type") {
        if (v != "default") throw refuse("rope_parameters.rope_type", "= " + v.dump() + "; kiln's rotary is \"default\"");
      } else if (!v.is_null()) {
        throw refuse("rope_parameters." + key, "= " + v.dump() + "; kiln's rotary has no such setting");
      }
    }
  }
  if (!(c.rope_base >= 1 && c.rope_base <= 1e12)) throw refuse("rope_theta", "= " + std::to_string(c.rope_base) + " is out of range");
  return c;
}

nlohmann::ordered_json hf_nanochat_config(const GPTConfig& c, const HfTokenIds& ids) {
  return {{"architectures", nlohmann::ordered_json::array({"NanoChatForCausalLM"})},
          {"model_type", "nanochat"},
          {"vocab_size", c.vocab_size},
          {"hidden_size", c.n_embd},
          {"intermediate_size", 4 * c.n_embd},
          {"num_hidden_layers", c.n_layer},
          {"num_attention_heads", c.n_head},
          {"num_key_value_heads", c.n_kv_head},
          {"max_position_embeddings", c.seq_len},
          {"hidden_act", "relu2"},
          {"attention_dropout", 0.0},
          {"rms_norm_eps", c.norm_eps > 0 ? c.norm_eps : float32_eps()},
          {"initializer_range", 0.02},
          {"rope_parameters", {{"rope_theta", c.rope_base}, {"rope_type", "default"}}},
          {"use_cache", true},
          {"final_logit_softcapping", c.softcap > 0 ? nlohmann::ordered_json(c.softcap) : nlohmann::ordered_json()},
          {"attention_bias", false},
          {"bos_token_id", ids.bos},
          {"eos_token_id", ids.eos},
          {"pad_token_id", ids.pad},
          {"tie_word_embeddings", false},
          {"dtype", "float32"}};
}

std::map<std::string, torch::Tensor> hf_nanochat_to_kiln(const std::map<std::string, torch::Tensor>& hf,
                                                         const GPTConfig& cfg, const std::string& file) {
  // The expected kiln names and shapes, from the model itself (meta device: no memory).
  model::GPTImpl shape(cfg, torch::kMeta);
  std::map<std::string, std::string> kiln_of;  // hf name -> kiln name
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : shape.named_parameters()) {
    const std::string k = p.key(), h = hf_name(k);
    TORCH_CHECK(!h.empty(), "hf_nanochat: no transformers name for ", k);
    kiln_of[h] = k;
    auto it = hf.find(h);
    if (it == hf.end())
      throw Error("[import] " + file + ": tensor '" + h + "' is missing",
                  "the file is incomplete, or config.json describes another model than model.safetensors holds");
    std::vector<int64_t> want = p.value().sizes().vec();
    if (is_vocab_rows(k)) want[0] = cfg.vocab_size;
    const torch::Tensor& t = it->second;
    if (!t.is_floating_point())
      throw Error("[import] " + file + ": tensor '" + h + "' has dtype " + std::string(c10::toString(t.scalar_type())),
                  "NanoChat weights are floating point");
    if (t.sizes().vec() != want) {
      std::ostringstream s;
      s << "[import] " << file << ": tensor '" << h << "' has shape " << t.sizes() << ", config.json implies "
        << torch::IntArrayRef(want);
      throw Error(s.str(), "config.json and model.safetensors do not belong together");
    }
    torch::Tensor v = t.to(torch::kFloat32).contiguous();
    if (is_vocab_rows(k) && cfg.padded_vocab_size > cfg.vocab_size)  // kiln's padding rows: never read
      v = torch::cat({v, torch::zeros({cfg.padded_vocab_size - cfg.vocab_size, v.size(1)}, v.options())}, 0);
    out[k] = v;
  }
  for (const auto& [name, t] : hf)
    if (!kiln_of.count(name))
      throw Error("[import] " + file + ": unexpected tensor '" + name + "'",
                  "not a NanoChatForCausalLM checkpoint, or one with parts kiln's nanochat model does not have");
  return out;
}

NamedTensors kiln_to_hf_nanochat(const NamedTensors& params, const GPTConfig& cfg) {
  NamedTensors out;
  std::string unmapped;
  for (const auto& [name, t] : params) {
    const std::string h = hf_name(name);
    if (h.empty()) {
      unmapped += (unmapped.empty() ? "" : ", ") + name;
      continue;
    }
    torch::Tensor v = is_vocab_rows(name) ? t.narrow(0, 0, cfg.vocab_size) : t;
    out.emplace_back(h, v.detach().to(torch::kCPU, torch::kFloat32).contiguous());
  }
  if (!unmapped.empty())
    throw Error("[export] transformers' NanoChatForCausalLM has no place for the model's " + unmapped,
                "this architecture has features NanoChat cannot express; it cannot be exported to transformers");
  return out;
}

}  // namespace kiln::ckpt
