// transformers' NanoChat (NanoChatForCausalLM, model_type "nanochat") <-> kiln's nanochat GPT
// (model/gpt.h): config.json fields and the one table of tensor names. The two compute the same
// function: embedding, RMSNorm, blocks (RMSNorm -> q/k/v, rotary with the same half split,
// QK-norm after rotary, causal attention, o_proj; RMSNorm -> relu^2 MLP), RMSNorm, untied head,
// softcap. kiln pads its embedding and head to a multiple of 64 rows; the files hold vocab_size
// rows (the padding is never read: export drops it, import fills it with zeros).
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <map>
#include <string>

#include "model/gpt.h"
#include "model/safetensors.h"

namespace kiln::ckpt {

// The architecture a NanoChat config.json describes (padded_vocab_size and head_dim derived).
// Throws kiln::Error naming the file and key when model_type is not "nanochat", the heads are
// inconsistent, or a setting has no kiln equivalent (hidden_act, intermediate_size other than
// 4 * hidden_size, attention_bias, tied embeddings, a rope type other than default, ...).
model::GPTConfig read_hf_nanochat_config(const std::string& config_json);

// Token ids written into config.json and generation_config.json.
struct HfTokenIds {
  int64_t bos = 0;
  nlohmann::ordered_json eos;  // an id or a list of ids
  int64_t pad = 0;
};
// config.json for `cfg` (rms_norm_eps: model.norm_eps, or float32's epsilon when it is 0).
nlohmann::ordered_json hf_nanochat_config(const model::GPTConfig& cfg, const HfTokenIds& ids);

// Hugging Face tensors (model.safetensors, any float dtype) as kiln's fp32 parameters by name,
// the embedding and head padded with zero rows to cfg.padded_vocab_size. Throws kiln::Error naming
// `file` and the tensor when one is missing, extra, not floating point or of the wrong shape.
std::map<std::string, torch::Tensor> hf_nanochat_to_kiln(const std::map<std::string, torch::Tensor>& hf,
                                                         const model::GPTConfig& cfg, const std::string& file);
// A kiln nanochat model's parameters under transformers' names (vocab_size rows). Throws
// kiln::Error naming the tensors that NanoChatForCausalLM has no place for.
model::NamedTensors kiln_to_hf_nanochat(const model::NamedTensors& params, const model::GPTConfig& cfg);

}  // namespace kiln::ckpt
