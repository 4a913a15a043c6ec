// ./export --ckpt DIR --out HFDIR — a GPT-2-architecture kiln checkpoint as a Hugging Face
// directory (config.json, model.safetensors, vocab.json, merges.txt, tokenizer_config.json) that
// transformers' AutoModelForCausalLM / AutoTokenizer.from_pretrained(HFDIR) load unchanged.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "dist/dist.h"      // guarded_main
#include "ckpt/hf_io.h"    // export_hf_gpt2

namespace {
int export_main(int argc, char** argv) {
  CLI::App app{"Export a GPT-2-architecture checkpoint to Hugging Face format.\n\nUsage:\n  ./export --ckpt "
               "runs/gpt2_shakespeare/ckpt --out hf/gpt2-shakespeare",
               "export"};
  std::string ckpt, out;
  app.add_option("--ckpt", ckpt, "checkpoint directory (its newest complete step), step dir or run dir")->required();
  app.add_option("--out", out, "directory to write")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  const std::string step = kiln::ckpt::export_hf_gpt2(ckpt, out);
  printf("[export] wrote %s from %s\n", out.c_str(), step.c_str());
  return 0;
}
}  // namespace

int main(int argc, char** argv) { return kiln::dist::guarded_main(export_main, argc, argv); }
