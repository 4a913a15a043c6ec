// ./sample — nanoGPT's sample.py: load a checkpoint and print samples from a start text.
// Today it checks its arguments and says plainly that sampling is not implemented yet.
#include <CLI/CLI.hpp>

#include "core/log.h"   // log::info
#include "dist/dist.h"  // guarded_main

namespace {
int sample_main(int argc, char** argv) {
  CLI::App app{"Sample text from a checkpoint.\n\nUsage:\n  ./sample --ckpt ckpt/base/ --start \"ROMEO:\" "
               "--num-samples 5 --temperature 0.8 --top-k 200\n\n"
               "Status of this build: argument checking only; the model and the sampler are not "
               "implemented yet.", "sample"};
  std::string ckpt, start = "\n";
  int num_samples = 1, max_new_tokens = 256, top_k = 0;
  double temperature = 0.8, top_p = 1.0;
  uint64_t seed = 1337;
  app.add_option("--ckpt", ckpt, "checkpoint directory")->required();
  app.add_option("--start", start, "start text, or FILE:path to read it from a file");
  app.add_option("--num-samples", num_samples, "number of samples")->check(CLI::PositiveNumber);
  app.add_option("--max-new-tokens", max_new_tokens, "tokens to generate per sample")->check(CLI::PositiveNumber);
  app.add_option("--temperature", temperature, "sampling temperature (0 = greedy)")->check(CLI::NonNegativeNumber);
  app.add_option("--top-k", top_k, "keep the k most likely tokens (0 = all)")->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", seed, "RNG seed");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  kiln::log::info("[sample] not implemented yet in this build: no model or sampler exists.");
  return 2;
}
}  // namespace

int main(int argc, char** argv) { return kiln::dist::guarded_main(sample_main, argc, argv); }
