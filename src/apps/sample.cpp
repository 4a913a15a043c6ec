// ./sample — nanoGPT's sample.py in C++: load the newest checkpoint, print the parameter count,
// then --num-samples samples from --start (text, or FILE:path), separated by a line of dashes.
// The samples are rows of one batch on the engine (KV cache); sample i uses seed --seed + i.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"         // Error
#include "dist/comm.h"          // pick_device
#include "dist/dist.h"          // guarded_main
#include "engine/generator.h"   // Generator, SamplingOptions
#include "tokenizer/chat.h"     // render_for_completion
#include "tokenizer/prompt.h"   // encode_prompt
#include "ckpt/load_model.h"   // load_model

namespace {
int sample_main(int argc, char** argv) {
  CLI::App app{"Sample text from a checkpoint.\n\nUsage:\n  ./sample --ckpt runs/tiny/ckpt --start \"ROMEO:\" "
               "--num-samples 5 --temperature 0.8 --top-k 200", "sample"};
  std::string ckpt, start = "\n", device = "auto";
  int num_samples = 3;
  int64_t max_new_tokens = 256, top_k = 200;
  double temperature = 0.8, top_p = 1.0;
  uint64_t seed = 1337;
  app.add_option("--ckpt", ckpt, "checkpoint directory (its newest complete step) or a run directory")->required();
  app.add_option("--start", start, "start text, or FILE:path to read it from a file");
  app.add_option("--num-samples", num_samples, "number of samples")->check(CLI::PositiveNumber);
  app.add_option("--max-new-tokens", max_new_tokens, "tokens to generate per sample")->check(CLI::PositiveNumber);
  app.add_option("--temperature", temperature, "sampling temperature (0 = greedy)")->check(CLI::NonNegativeNumber);
  app.add_option("--top-k", top_k, "keep the k most likely tokens (0 = all)")->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", seed, "RNG seed");
  bool chat = false;
  app.add_flag("--chat", chat, "--start is a user message: render it with the chat template and stop at <|assistant_end|>");
  app.add_option("--device", device, "auto | cpu | cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (start.rfind("FILE:", 0) == 0) {
    std::ifstream in(start.substr(5), std::ios::binary);
    if (!in) throw kiln::Error("--start " + start + ": cannot read the file");
    std::stringstream ss;
    ss << in.rdbuf();
    start = ss.str();
  }
  auto m = kiln::ckpt::load_model(ckpt, kiln::dist::pick_device(device, "--device"));
  printf("number of parameters: %.2fM (%lld) from %s\n", m.model->num_params() / 1e6,
         (long long)m.model->num_params(), m.dir.c_str());
  // A prompt starts as the tokenizer's documents do (tokenizer/prompt.h): <|bos|> for nanochat's,
  // the text alone for GPT-2's (as nanoGPT and Hugging Face sample), <|endoftext|> for no text.
  const int64_t bos = m.tokenizer->bos_id();
  std::vector<int64_t> prompt = kiln::tok::encode_prompt(*m.tokenizer, start);
  if (chat) {  // <|bos|><|user_start|>start<|user_end|><|assistant_start|>
    kiln::tok::Conversation c;
    c.messages.push_back({"user", start});
    auto ids = kiln::tok::render_for_completion(*m.tokenizer, c);
    prompt.assign(ids.begin(), ids.end());
  }
  std::vector<kiln::engine::SamplingOptions> opts(static_cast<size_t>(num_samples));
  for (int i = 0; i < num_samples; ++i) {
    auto& o = opts[static_cast<size_t>(i)];
    o.max_new_tokens = max_new_tokens;
    o.temperature = temperature;
    o.top_k = top_k;
    o.top_p = top_p;
    o.seed = seed + static_cast<uint64_t>(i);
    // A base model ends its document with <|bos|>; a chat reply ends with <|assistant_end|>.
    o.stop_tokens = {chat ? int64_t(m.tokenizer->special_id("<|assistant_end|>")) : bos};
    o.tools = chat;
  }
  kiln::engine::Generator gen(m.model, m.tokenizer);
  auto results = gen.generate(std::vector<std::vector<int64_t>>(static_cast<size_t>(num_samples), prompt), opts);
  for (const auto& r : results) {
    std::vector<uint32_t> ids(prompt.begin() + (prompt.front() == bos ? 1 : 0), prompt.end());
    ids.insert(ids.end(), r.ids.begin(), r.ids.end());
    printf("%s\n---------------\n", m.tokenizer->decode(ids).c_str());
  }
  fflush(stdout);
  return 0;
}
}  // namespace

int main(int argc, char** argv) { return kiln::dist::guarded_main(sample_main, argc, argv); }
