// ./import gpt2 and ./export: a Hugging Face GPT-2 directory (config.json, model.safetensors,
// vocab.json + merges.txt) <-> a kiln checkpoint that every binary opens. The name/layout table is
// ckpt/hf_gpt2.h; this file adds the files, the tokenizer and the checkpoint format around it.
#pragma once
#include <string>

#include "model/lm.h"
#include "tokenizer/tokenizer.h"

namespace kiln::ckpt {

// Writes <out_dir>/step_00000000 (model, config with model.arch = gpt2, tokenizer, meta, DONE)
// and returns that directory. tokenizer_json "" takes vocab.json + merges.txt from hf_dir.
// Throws kiln::Error naming the file and tensor/field on anything it cannot import exactly.
std::string import_hf_gpt2(const std::string& hf_dir, const std::string& out_dir, const std::string& tokenizer_json = "");

// Writes the newest checkpoint under ckpt_path (a GPT-2-architecture model) as a Hugging Face
// directory that transformers' AutoModelForCausalLM and AutoTokenizer load; returns the step
// directory read. The tokenizer files are written when the tokenizer is GPT-2's byte-level BPE.
std::string export_hf_gpt2(const std::string& ckpt_path, const std::string& out_dir);
// The same for a model in memory (model.arch gpt2, else kiln::Error) and its tokenizer.
void write_hf_gpt2(model::LM& model, const tok::Tokenizer& tokenizer, const std::string& out_dir);

}  // namespace kiln::ckpt
