// ./export --ckpt DIR --out HFDIR — a kiln checkpoint as a Hugging Face directory that
// transformers' AutoModelForCausalLM / AutoTokenizer.from_pretrained(HFDIR) load unchanged: GPT-2
// (GPT2LMHeadModel: vocab.json, merges.txt) or nanochat (NanoChatForCausalLM: tokenizer.json,
// a chat template, generation_config.json).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "dist/dist.h"      // guarded_main
#include "ckpt/hf_io.h"    // export_hf

namespace {
int export_main(int argc, char** argv) {
  CLI::App app{"Export a checkpoint (model.arch nanochat or gpt2) to Hugging Face format.\n\nUsage:\n  ./export --ckpt "
               "runs/d20_sft/ckpt --out hf/d20-chat",
               "export"};
  std::string ckpt, out;
  app.add_option("--ckpt", ckpt, "checkpoint directory (its newest complete step), step dir or run dir")->required();
  app.add_option("--out", out, "directory to write")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  const std::string step = kiln::ckpt::export_hf(ckpt, out);
  printf("[export] wrote %s from %s\n", out.c_str(), step.c_str());
  return 0;
}
}  // namespace

int main(int argc, char** argv) { return kiln::dist::guarded_main(export_main, argc, argv); }
