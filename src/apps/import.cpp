// ./import gpt2|nanochat --from HFDIR --out CKPT — a Hugging Face GPT-2 directory (e.g. from
// data_tools/fetch_gpt2.sh) or a transformers NanoChat directory (./export's, or a published
// nanochat model) into a kiln checkpoint that ./sample, ./chat, ./serve, ./eval, ./export and
// init.from open. The architecture is a subcommand.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "dist/dist.h"      // guarded_main
#include "ckpt/hf_io.h"    // import_hf_gpt2, import_hf_nanochat

namespace {
int import_main(int argc, char** argv) {
  CLI::App app{"Import pretrained weights into a kiln checkpoint.\n\nUsage:\n  ./import gpt2 --from hf/gpt2 --out "
               "runs/gpt2/ckpt",
               "import"};
  app.require_subcommand(1);
  auto* gpt2 = app.add_subcommand("gpt2", "a Hugging Face GPT-2 directory: config.json, model.safetensors, and "
                                          "vocab.json + merges.txt (or --tokenizer)");
  std::string from, out, tokenizer;
  gpt2->add_option("--from", from, "the Hugging Face directory")->required();
  gpt2->add_option("--out", out, "checkpoint directory to write (step_00000000 inside)")->required();
  gpt2->add_option("--tokenizer", tokenizer, "a kiln tokenizer JSON instead of the directory's vocab.json + merges.txt");
  auto* nanochat = app.add_subcommand("nanochat", "a transformers NanoChat directory (NanoChatForCausalLM): config.json, "
                                                  "model.safetensors, tokenizer.json, tokenizer_config.json");
  nanochat->add_option("--from", from, "the Hugging Face directory")->required();
  nanochat->add_option("--out", out, "checkpoint directory to write (step_00000000 inside)")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  const bool is_gpt2 = gpt2->parsed();
  const std::string step =
      is_gpt2 ? kiln::ckpt::import_hf_gpt2(from, out, tokenizer) : kiln::ckpt::import_hf_nanochat(from, out);
  printf("[import] wrote %s (model.arch: %s)\n", step.c_str(), is_gpt2 ? "gpt2" : "nanochat");
  return 0;
}
}  // namespace

int main(int argc, char** argv) { return kiln::dist::guarded_main(import_main, argc, argv); }
