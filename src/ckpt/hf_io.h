// ./import gpt2|nanochat and ./export: a Hugging Face directory <-> a kiln checkpoint that every
// binary opens. GPT-2: config.json, model.safetensors, vocab.json + merges.txt (table: hf_gpt2.h).
// nanochat: transformers' NanoChatForCausalLM layout, config.json, model.safetensors,
// tokenizer.json, tokenizer_config.json (chat template), generation_config.json (table:
// hf_nanochat.h). This file adds the files, the tokenizer and the checkpoint format around them.
#pragma once
#include <string>

#include "model/lm.h"
#include "tokenizer/tokenizer.h"

namespace kiln::ckpt {

// Writes <out_dir>/step_00000000 (model, config with model.arch = gpt2, tokenizer, meta, DONE)
// and returns that directory. tokenizer_json "" takes vocab.json + merges.txt from hf_dir.
// Throws kiln::Error naming the file and tensor/field on anything it cannot import exactly.
std::string import_hf_gpt2(const std::string& hf_dir, const std::string& out_dir, const std::string& tokenizer_json = "");

// The same for transformers' NanoChat layout: model_type "nanochat", tokenizer.json with the chat
// special tokens kiln's chat format needs, the weights as they are (any float dtype; the
// embedding and head padded with zero rows to kiln's multiple of 64). Writes lineage.chat when
// generation stops at <|assistant_end|> (generation_config.json or tokenizer_config.json).
std::string import_hf_nanochat(const std::string& hf_dir, const std::string& out_dir);

// Writes the newest checkpoint under ckpt_path as a Hugging Face directory that transformers'
// AutoModelForCausalLM and AutoTokenizer load (GPT-2: write_hf_gpt2; nanochat: write_hf_nanochat,
// chat = a midtrain/sft checkpoint or a chat import); returns the step directory read.
std::string export_hf(const std::string& ckpt_path, const std::string& out_dir);
// The same for a model in memory (model.arch gpt2, else kiln::Error) and its tokenizer.
void write_hf_gpt2(model::LM& model, const tok::Tokenizer& tokenizer, const std::string& out_dir);
// A nanochat model in memory as NanoChatForCausalLM files, with tokenizer.json, a
// tokenizer_config.json whose chat template renders kiln's chat ids (when the tokenizer has the
// chat tokens) and generation_config.json (eos: <|assistant_end|> and <|bos|> when `chat`, else
// <|bos|>). Throws kiln::Error, before writing anything, for a model NanoChat cannot express.
void write_hf_nanochat(model::LM& model, const tok::Tokenizer& tokenizer, const std::string& out_dir, bool chat);

}  // namespace kiln::ckpt
