// Generation throughput of the engine: prefill tok/s, and decode tok/s at batch 1 and 16 with the
// KV cache (engine::Generator, greedy) and without it (the whole context recomputed per token).
// Writes the model's weights and shape for bench/generate_ref.py (PyTorch with a KV cache), which
// bench/generate.sh and bench/gpu_check.sh run beside it.
// Usage: bench_generate OUT_DIR [--ckpt DIR | --model LAYERS,WIDTH,HEADS,SEQ,VOCAB] [threads] [device]
// (--model: random weights of that shape, e.g. 20,1280,10,2048,65536 for d20; default 6,384,6,256
// and the byte tokenizer's vocabulary, the shakespeare_char shape).
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "dist/comm.h"          // pick_device
#include "engine/generator.h"  // Generator
#include "model/gpt.h"         // GPT
#include "model/kv_cache.h"    // KVCache
#include "model/safetensors.h" // save_safetensors, named_parameters_of
#include "ckpt/load_model.h"  // load_model
#include "profile.h"           // profile

namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

std::vector<std::vector<int64_t>> prompts(int64_t B, int64_t len, int64_t vocab) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(1);
  auto t = torch::randint(0, std::min<int64_t>(vocab, 256), {B, len}, g, torch::kInt64);
  std::vector<std::vector<int64_t>> p(B);
  for (int64_t b = 0; b < B; ++b) p[b].assign(t[b].data_ptr<int64_t>(), t[b].data_ptr<int64_t>() + len);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_generate OUT_DIR [--ckpt DIR] [threads] [cpu|cuda]\n");
    return 2;
  }
  const std::string out = argv[1];
  std::string ckpt;
  std::vector<int64_t> shape = {6, 384, 6, 256, 0};  // layers, width, heads, seq, vocab (0: tokenizer's)
  int arg = 2;
  if (argc > 3 && std::string(argv[2]) == "--ckpt") ckpt = argv[3], arg = 4;
  if (argc > 3 && std::string(argv[2]) == "--model") {
    shape.clear();
    std::stringstream ss(argv[3]);
    for (std::string v; std::getline(ss, v, ',');) shape.push_back(std::stoll(v));
    arg = 4;
    if (shape.size() != 5) {
      std::fprintf(stderr, "bench_generate: --model wants LAYERS,WIDTH,HEADS,SEQ,VOCAB\n");
      return 2;
    }
  }
  const int threads = argc > arg ? std::stoi(argv[arg]) : 1;
  const torch::Device dev = kiln::dist::pick_device(argc > arg + 1 ? argv[arg + 1] : "cpu", "DEVICE");
  at::set_num_threads(threads);
  torch::NoGradGuard ng;
  kiln::model::Model model;
  std::shared_ptr<const kiln::tok::Tokenizer> tok;
  if (!ckpt.empty()) {
    auto m = kiln::ckpt::load_model(ckpt, dev);
    model = m.model;
    tok = m.tokenizer;
  } else {
    // No checkpoint: random weights of the --model shape (default shakespeare_char's).
    tok = std::make_shared<const kiln::tok::Tokenizer>(kiln::tok::Tokenizer::from_merges({}));
    kiln::ModelConfig mc;
    mc.depth = shape[0];
    mc.width = shape[1];
    mc.n_head = shape[2];
    mc.seq_len = shape[3];
    model = kiln::model::GPT(kiln::model::GPTConfig::from(mc, shape[4] > 0 ? shape[4] : tok->vocab_size())).ptr();
    auto g = at::make_generator<at::CPUGeneratorImpl>(3);
    for (auto& p : model->parameters()) p.normal_(0.0, 1.0 / std::sqrt(double(p.size(-1))), g);
    model->to(dev);
  }
  model->eval();
  // The PyTorch reference below is nanochat's architecture.
  const auto* gpt = dynamic_cast<const kiln::model::GPTImpl*>(model.get());
  if (!gpt) {
    std::fprintf(stderr, "bench_generate: the checkpoint is a %s model; this bench compares nanochat's\n",
                 model->arch().c_str());
    return 2;
  }
  const auto& c = gpt->config();
  // The reference reads exactly these weights (kiln's parameter names) and this shape.
  kiln::model::save_safetensors(out + "/model.safetensors", kiln::model::named_parameters_of(*model));
  {
    std::ofstream f(out + "/shape.json");
    f << "{\"n_layer\":" << c.n_layer << ",\"n_embd\":" << c.n_embd << ",\"n_head\":" << c.n_head
      << ",\"n_kv_head\":" << c.n_kv_head << ",\"head_dim\":" << c.head_dim << ",\"seq_len\":" << c.seq_len
      << ",\"vocab_size\":" << c.vocab_size << ",\"padded_vocab_size\":" << c.padded_vocab_size
      << ",\"softcap\":" << c.softcap << ",\"rope_base\":" << c.rope_base << "}\n";
  }
  const int64_t P = std::min<int64_t>(128, c.seq_len), N = 128;  // prompt and new tokens
  std::printf("model: %lld layers, width %lld, %lld params; prompt %lld, new %lld, threads %d, %s\n",
              (long long)c.n_layer, (long long)c.n_embd, (long long)model->num_params(), (long long)P, (long long)N,
              threads, dev.str().c_str());

  // Prefill: batch 16 prompts of P tokens through forward_cached, each time into a fresh cache.
  {
    std::vector<int64_t> flat;
    for (auto& r : prompts(16, P, c.vocab_size)) flat.insert(flat.end(), r.begin(), r.end());
    const auto idx = torch::tensor(flat).view({16, P}).to(dev);
    std::vector<int64_t> n(16, P), slots(16);
    for (int64_t i = 0; i < 16; ++i) slots[i] = i;
    auto new_cache = [&] { return kiln::model::KVCache(model->cache_shape(), 16, P + 1); };
    for (int rep = 0; rep < 2; ++rep) {  // first = warm-up
      auto cache = new_cache();  // made outside the timed region
      sync(dev);
      auto t0 = Clock::now();
      model->forward_cached(idx, n, slots, cache);
      sync(dev);
      if (rep == 1) std::printf("kiln prefill B=16 tok_per_s=%.0f\n", 16.0 * P / secs(t0));
    }
    // KILN_BENCH_PROFILE=N: also the op profile of N such prefills.
    if (const char* pr = std::getenv("KILN_BENCH_PROFILE")) {
      std::printf("prefill profile (B=16, %lld tokens each):\n", (long long)P);
      profile(dev, std::atoll(pr), [&] {
        auto cache = new_cache();
        model->forward_cached(idx, n, slots, cache);
      });
    }
  }
  // The decode prompts (row 0 alone for batch 1), saved for the reference to use the same ones.
  const auto all = prompts(16, P, c.vocab_size);
  {
    std::vector<int64_t> flat;
    for (auto& r : all) flat.insert(flat.end(), r.begin(), r.end());
    kiln::model::save_safetensors(out + "/prompts.safetensors", {{"prompts", torch::tensor(flat).view({16, P})}});
  }
  std::vector<int64_t> first_ids;
  for (int64_t B : {1, 16}) {
    std::vector<std::vector<int64_t>> p(all.begin(), all.begin() + B);
    kiln::engine::SamplingOptions o;
    o.temperature = 0;
    o.max_new_tokens = N;
    o.stop_tokens = {-1};
    o.tools = false;
    kiln::engine::Generator gen(model, tok);
    gen.generate(prompts(B, 8, c.vocab_size), {o});  // warm-up
    sync(dev);
    // Decode rate: new tokens over the time after the prefill step (measured as its own step).
    auto t0 = Clock::now();
    std::vector<kiln::engine::Generator::Slot> slots;
    for (auto& r : p) slots.push_back(gen.add(r, o));
    gen.step();  // prefill + first token
    sync(dev);
    const double t_prefill = secs(t0);
    auto t1 = Clock::now();
    int64_t produced = 0;
    while (gen.live_rows() > 0) produced += static_cast<int64_t>(gen.step().size());
    sync(dev);
    const double t_decode = secs(t1);
    std::printf("kiln cached B=%lld decode tok_per_s=%.0f (prefill %.3fs)\n", (long long)B, produced / t_decode,
                t_prefill);
    if (B == 1) first_ids = gen.result(slots[0]).ids;
    // Without the cache: the whole context every token (as ./sample did before the engine).
    const int64_t N_unc = B == 1 ? N : N / 4;  // fewer steps at B=16: it is slow
    std::vector<int64_t> flat;
    for (auto& r : p) flat.insert(flat.end(), r.begin(), r.end());
    auto seq = torch::tensor(flat).view({B, P}).to(dev);
    std::vector<int64_t> unc_ids;
    auto t2 = Clock::now();
    for (int64_t i = 0; i < N_unc; ++i) {
      auto next = model->forward(seq).select(1, -1).argmax(-1).view({B, 1});
      if (B == 1) unc_ids.push_back(next.item<int64_t>());
      seq = torch::cat({seq, next}, 1);
    }
    sync(dev);
    std::printf("kiln uncached B=%lld decode tok_per_s=%.0f\n", (long long)B, double(B * N_unc) / secs(t2));
    if (B == 1) std::printf("kiln cached == uncached greedy ids: %s\n", unc_ids == first_ids ? "yes" : "NO");
  }
  // Continuous batching as ./serve meets it: 16 rows whose prompts differ in length (so the cache
  // rows are ragged and the step takes the masked path), sampled at temperature 1 with their own
  // seeds. KILN_BENCH_PROFILE=N adds the op profile of N such decode steps (and of N prefills, above).
  {
    kiln::engine::Generator gen(model, tok, 16);
    auto start = [&] {
      for (int64_t b = 0; b < 16; ++b) {
        kiln::engine::SamplingOptions o;
        o.temperature = 1.0;
        o.max_new_tokens = N;
        o.stop_tokens = {-1};
        o.tools = false;
        o.seed = 100 + static_cast<uint64_t>(b);
        gen.add(prompts(1, 8 + b, c.vocab_size)[0], o);
      }
      gen.step();  // prefill
    };
    start();
    sync(dev);
    auto t1 = Clock::now();
    int64_t produced = 0;
    while (gen.live_rows() > 0) produced += static_cast<int64_t>(gen.step().size());
    sync(dev);
    std::printf("kiln ragged B=16 decode tok_per_s=%.0f (prompts of 8..23 tokens, temperature 1)\n",
                produced / secs(t1));
    if (const char* p = std::getenv("KILN_BENCH_PROFILE")) {
      for (int64_t s = 0; s < 16; ++s) gen.remove(s);
      start();
      profile(dev, std::atoll(p), [&] { gen.step(); });
    }
  }
  std::printf("kiln ids B=1:");
  for (auto id : first_ids) std::printf(" %lld", (long long)id);
  std::printf("\n");
  return 0;
}
