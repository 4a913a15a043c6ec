// ./chat — terminal chat with a checkpoint (nanochat's chat_cli): streams the reply as it is
// generated, keeps the conversation, `clear` starts over, `quit` / `exit` / Ctrl-D leave, and
// -p answers one prompt and exits. The conversation is kept as token ids, rendered as in training.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <string>

#include "core/error.h"          // Error
#include "dist/comm.h"           // pick_device
#include "dist/dist.h"           // guarded_main
#include "engine/generator.h"    // Generator, SamplingOptions, GenToken
#include "engine/token_text.h"   // token_text
#include "engine/utf8_stream.h"  // Utf8Stream
#include "tokenizer/chat.h"      // continue_for_completion
#include "ckpt/load_model.h"    // load_model

namespace {

using kiln::engine::GenToken;

struct Chat {
  kiln::ckpt::LoadedModel m;
  kiln::engine::Generator gen;
  kiln::engine::SamplingOptions opts;
  std::vector<uint32_t> conv;  // <|bos|> then the turns so far (empty: a fresh conversation)
  int64_t assistant_end;
  uint64_t turn = 0;

  Chat(kiln::ckpt::LoadedModel lm, const kiln::engine::SamplingOptions& o)
      : m(std::move(lm)), gen(m.model, m.tokenizer), opts(o) {
    kiln::tok::continue_for_completion(*m.tokenizer, {}, "");  // a tokenizer without chat tokens stops here
    assistant_end = m.tokenizer->special_id("<|assistant_end|>");
    clear();
  }

  // A fresh conversation, as a new session: turn i samples with seed + i again.
  void clear() {
    conv.clear();
    turn = 0;
  }

  // One user turn: appends it (rendered by the chat template, tokenizer/chat.h), streams the reply
  // to stdout, appends the reply.
  void reply(const std::string& text) {
    const auto ids = kiln::tok::continue_for_completion(*m.tokenizer, conv, text);
    std::vector<int64_t> prompt(ids.begin(), ids.end());
    if (static_cast<int64_t>(prompt.size()) + opts.max_new_tokens > m.model->max_positions()) {
      std::printf("(the conversation no longer fits the model's %lld positions: starting over)\n",
                  static_cast<long long>(m.model->max_positions()));
      clear();
      return reply(text);
    }
    kiln::engine::SamplingOptions o = opts;
    o.seed = opts.seed + turn++;
    kiln::engine::Utf8Stream out;
    auto res = gen.generate({prompt}, {o}, [&](size_t, const GenToken& t) {
      std::fputs(out.push(kiln::engine::token_text(*m.tokenizer, t.id)).c_str(), stdout);
      std::fflush(stdout);
      return true;
    })[0];
    std::fputs(out.flush().c_str(), stdout);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    conv.assign(prompt.begin(), prompt.end());
    conv.insert(conv.end(), res.ids.begin(), res.ids.end());
    conv.push_back(static_cast<uint32_t>(assistant_end));  // also after a reply cut at the token limit, as nanochat
  }
};

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

int chat_main(int argc, char** argv) {
  CLI::App app{"Chat with a checkpoint in the terminal.\n\nUsage:\n  ./chat --ckpt ckpt/sft/            talk; "
               "'clear' starts over, 'quit', 'exit' or Ctrl-D leaves\n  ./chat --ckpt ckpt/sft/ -p \"Why is the sky "
               "blue?\"   answer once and exit", "chat"};
  std::string ckpt, prompt, device = "auto";
  kiln::engine::SamplingOptions o;
  o.temperature = 0.6;
  o.top_k = 50;
  o.seed = 42;
  app.add_option("--ckpt", ckpt, "checkpoint directory (its newest complete step) or a run directory")->required();
  app.add_option("-p,--prompt", prompt, "answer one prompt and exit");
  app.add_option("-t,--temperature", o.temperature, "sampling temperature (0 = greedy)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("-k,--top-k", o.top_k, "top-k sampling (0 = all tokens)")->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", o.top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
  app.add_option("--max-tokens", o.max_new_tokens, "longest reply in tokens")->check(CLI::PositiveNumber);
  app.add_option("--seed", o.seed, "RNG seed (turn i samples with seed + i)");
  app.add_option("--device", device, "auto | cpu | cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  Chat chat(kiln::ckpt::load_model(ckpt, kiln::dist::pick_device(device, "--device")), o);
  if (app.count("--prompt")) {
    chat.reply(prompt);
    return 0;
  }
  std::printf("kiln chat: %s (step %lld). Type 'clear' to start over, 'quit' or 'exit' (or Ctrl-D) to leave.\n",
              chat.m.dir.c_str(), static_cast<long long>(chat.m.step));
  std::string line;
  while (true) {
    std::fputs("\nUser: ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) {  // Ctrl-D
      std::fputs("\n", stdout);
      break;
    }
    const std::string text = trim(line);
    if (text == "quit" || text == "exit") break;
    if (text == "clear") {
      chat.clear();
      std::fputs("(conversation cleared)\n", stdout);
      continue;
    }
    if (text.empty()) continue;
    std::fputs("\nAssistant: ", stdout);
    std::fflush(stdout);
    chat.reply(text);
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) { return kiln::dist::guarded_main(chat_main, argc, argv); }
