// ./chat — terminal chat with a fine-tuned checkpoint (nanochat's chat_cli).
// Today it checks its arguments and says plainly that chatting is not implemented yet.
#include <CLI/CLI.hpp>

#include "core/log.h"   // log::info
#include "dist/dist.h"  // guarded_main

namespace {
int chat_main(int argc, char** argv) {
  CLI::App app{"Chat with a checkpoint in the terminal.\n\nUsage:\n  ./chat --ckpt ckpt/sft/ [--prompt TEXT]\n\n"
               "Status of this build: argument checking only; the engine is not implemented yet.", "chat"};
  std::string ckpt, prompt;
  double temperature = 0.6;
  int top_k = 50;
  app.add_option("--ckpt", ckpt, "checkpoint directory")->required();
  app.add_option("-p,--prompt", prompt, "answer one prompt and exit");
  app.add_option("-t,--temperature", temperature, "sampling temperature")->check(CLI::NonNegativeNumber);
  app.add_option("-k,--top-k", top_k, "top-k sampling")->check(CLI::NonNegativeNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  kiln::log::info("[chat] not implemented yet in this build: the engine does not exist.");
  return 2;
}
}  // namespace

int main(int argc, char** argv) { return kiln::dist::guarded_main(chat_main, argc, argv); }
