// Hugging Face's GPT-2 files <-> kiln's GPT-2 (gpt2.h): config.json fields, and the one table of
// tensor names. Names are the same up to the "transformer." prefix (OpenAI's own upload omits it);
// Hugging Face's Conv1D stores weights (in, out), kiln's linears (out, in): those four transpose.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <map>
#include <string>

#include "model/gpt2.h"
#include "model/safetensors.h"

namespace kiln::ckpt {

using model::GPT2Config;
using model::NamedTensors;

// The architecture a Hugging Face config.json describes. Throws kiln::Error naming the file and
// field when it is not a GPT-2 that kiln runs exactly (e.g. another activation or untied head).
GPT2Config read_hf_gpt2_config(const std::string& config_json);

// config.json for `cfg`; bos/eos: the tokenizer's <|endoftext|>.
nlohmann::ordered_json hf_gpt2_config(const GPT2Config& cfg, int64_t eos_id);

// Hugging Face tensors (model.safetensors, any float dtype) as kiln's fp32 parameters by name.
// Buffers attn.bias / attn.masked_bias are dropped; lm_head.weight must equal wte (tied). Throws
// kiln::Error naming `file` and the tensor when one is missing, extra or of the wrong shape.
std::map<std::string, torch::Tensor> hf_to_kiln(const std::map<std::string, torch::Tensor>& hf,
                                                const GPT2Config& cfg, const std::string& file);
// A kiln GPT-2's parameters under Hugging Face's names and layout (lm_head omitted: tied).
NamedTensors kiln_to_hf(const NamedTensors& params);

}  // namespace kiln::ckpt
