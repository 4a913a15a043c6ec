// Training-step throughput of kiln's GPT: forward + backward + Muon/AdamW step on random tokens,
// printed as one key=value line that bench/train_step.sh (CPU, beside PyTorch eager) and
// bench/gpu_check.sh (CUDA, beside PyTorch eager and torch.compile) set beside
// bench/train_step_ref.py. A named shape (tiny, shakespeare_char) or any shape from flags; on CUDA
// with bf16 autocast (the Trainer's default there) and optionally train.fp8's FP8 matmuls.
// Usage: bench_train_step SHAPE [threads] [steps] [--layers N --width N --heads N --seq N
//        --vocab N --batch N --warmup N --device cpu|cuda --dtype fp32|bf16 --fp8 --weights-out F
//        --arch nanochat|nanochat2 --short-window N]
// --arch nanochat2 benches nanochat's current model (windows SSSL, short window --short-window or
// nanochat's rule; value embeddings, lambdas, smear, backout) at the same shape as V1.
// --profile N profiles N more steps after the timed ones (Kineto, as torch.profiler) and prints the
// table of where the time went: "profile:" lines, GPU kernels by total time on CUDA, ATen ops by
// inclusive CPU time on the CPU (a parent op includes its children there).
// --weights-out writes the initial weights (safetensors) so that the reference starts from them
// and the two loss curves (losses=..., one per step) can be compared.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/config.h"         // ModelConfig, OptimConfig
#include "model/autocast.h"      // AutocastGuard
#include "model/fp8.h"           // fp8::Guard
#include "model/lm.h"            // make_model
#include "model/safetensors.h"   // save_safetensors, named_parameters_of
#include "optim/optimizers.h"    // make_optimizers

#ifdef KILN_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <functional>

#include "profile.h"  // profile

namespace {

struct Shape {
  std::string name;
  int64_t layers, width, heads, seq, vocab, batch, warmup, steps;
};
// The same table is in bench/train_step_ref.py.
const Shape kShapes[] = {
    {"tiny", 4, 128, 4, 64, 265, 16, 5, 30},
    {"shakespeare_char", 6, 384, 6, 256, 265, 64, 1, 3},
};

// Peak bytes the CUDA caching allocator handed out since the last reset (-1 on the CPU).
double peak_gb(const torch::Device& d, bool reset) {
#ifdef KILN_WITH_CUDA
  if (d.is_cuda()) {
    using c10::cuda::CUDACachingAllocator::getDeviceStats;
    if (reset) {
      c10::cuda::CUDACachingAllocator::resetPeakStats(d.index());
      return 0;
    }
    const auto s = getDeviceStats(d.index());
    return double(s.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak) / 1e9;
  }
#endif
  (void)d, (void)reset;
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  Shape s{"custom", 0, 0, 0, 0, 0, 0, 0, 0};
  std::string device = "cpu", dtype = "fp32", weights_out, arch = "nanochat";
  int64_t short_window = 0;
  bool fp8 = false;
  int64_t profile_steps = 0;
  std::vector<std::pair<std::string, int64_t>> ints;  // shape flags, applied after the named shape
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_train_step: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--device") device = next();
    else if (a == "--dtype") dtype = next();
    else if (a == "--fp8") fp8 = true;
    else if (a == "--weights-out") weights_out = next();
    else if (a == "--arch") arch = next();
    else if (a == "--short-window") short_window = std::atoll(next().c_str());
    else if (a == "--profile") profile_steps = std::atoll(next().c_str());
    else if (a.rfind("--", 0) == 0) ints.emplace_back(a, std::atoll(next().c_str()));
    else pos.push_back(a);
  }
  const std::string which = pos.empty() ? "tiny" : pos[0];
  bool found = which == "custom";
  for (const auto& k : kShapes)
    if (which == k.name) s = k, found = true;
  struct Key {
    const char* flag;
    int64_t* field;
  };
  const Key keys[] = {{"--layers", &s.layers}, {"--width", &s.width}, {"--heads", &s.heads}, {"--seq", &s.seq},
                      {"--vocab", &s.vocab},   {"--batch", &s.batch}, {"--warmup", &s.warmup}, {"--steps", &s.steps}};
  for (const auto& [flag, v] : ints) {
    bool ok = false;
    for (const auto& k : keys)
      if (flag == k.flag) *k.field = v, ok = true;
    if (!ok) found = false;
  }
  if (!found || s.layers <= 0 || s.width <= 0 || s.heads <= 0 || s.seq <= 0 || s.vocab <= 0 || s.batch <= 0 ||
      (device != "cpu" && device != "cuda") || (dtype != "fp32" && dtype != "bf16") ||
      (arch != "nanochat" && arch != "nanochat2")) {
    std::fprintf(stderr,
                 "usage: %s tiny|shakespeare_char|custom [threads] [steps] [--layers N --width N --heads N --seq N "
                 "--vocab N --batch N --warmup N --steps N --device cpu|cuda --dtype fp32|bf16 --fp8 --weights-out F --profile N "
                 "--arch nanochat|nanochat2 --short-window N]\n",
                 argv[0]);
    return 2;
  }
  if (pos.size() > 1) at::set_num_threads(std::atoi(pos[1].c_str()));
  if (pos.size() > 2) s.steps = std::atoll(pos[2].c_str());
  const torch::Device dev = device == "cuda" ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  const bool autocast = dtype == "bf16";

  kiln::ModelConfig m;
  m.depth = s.layers;
  m.width = s.width;
  m.n_head = s.heads;
  m.seq_len = s.seq;
  m.arch = arch;
  if (arch == "nanochat2") m.rope_base = 100000.0, m.short_window = short_window;
  auto model = kiln::model::make_model(m, s.vocab, 42, torch::kCPU);
  if (!weights_out.empty()) kiln::model::save_safetensors(weights_out, kiln::model::named_parameters_of(*model));
  model->to(dev);
  kiln::OptimConfig o;
  auto opt = kiln::optim::make_optimizers(model->param_groups(), o, model->width());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  std::vector<double> times, losses;
  double t_fwd = 0, t_bwd = 0, t_opt = 0;  // summed over the timed steps
  using clock = std::chrono::steady_clock;
  auto sync = [&] {
#ifdef KILN_WITH_CUDA
    if (dev.is_cuda()) torch::cuda::synchronize();
#endif
  };
  auto since = [&](clock::time_point t) {
    sync();
    return std::chrono::duration<double>(clock::now() - t).count();
  };
  for (int64_t i = 0; i < s.warmup + s.steps; ++i) {
    if (i == s.warmup) peak_gb(dev, /*reset=*/true);
    auto idx = torch::randint(s.vocab, {s.batch, s.seq}, gen, torch::kLong).to(dev);
    auto tgt = torch::randint(s.vocab, {s.batch, s.seq}, gen, torch::kLong).to(dev);
    const auto t0 = clock::now();
    torch::Tensor loss;
    {
      kiln::model::AutocastGuard ag(dev, autocast);
      kiln::model::fp8::Guard f8(fp8);
      loss = model->forward(idx, tgt);
    }
    const double f = since(t0);
    loss.backward();
    const double b = since(t0);
    opt.set_schedule(i, 1000, o);
    opt.step();
    opt.zero_grad();
    losses.push_back(loss.item<double>());
    const double dt = since(t0);
    if (i >= s.warmup) {
      times.push_back(dt);
      t_fwd += f;
      t_bwd += b - f;
      t_opt += dt - b;
    }
  }
  if (profile_steps > 0)
    profile(dev, profile_steps, [&] {
      auto idx = torch::randint(s.vocab, {s.batch, s.seq}, gen, torch::kLong).to(dev);
      auto tgt = torch::randint(s.vocab, {s.batch, s.seq}, gen, torch::kLong).to(dev);
      torch::Tensor loss;
      {
        kiln::model::AutocastGuard ag(dev, autocast);
        kiln::model::fp8::Guard f8(fp8);
        loss = model->forward(idx, tgt);
      }
      loss.backward();
      opt.step();
      opt.zero_grad();
      sync();
    });
  std::sort(times.begin(), times.end());
  const double med = times[times.size() / 2];
  const double n = double(times.size());
  std::string ls;
  for (double l : losses) ls += (ls.empty() ? "" : ",") + std::to_string(l);
  std::printf("impl=kiln%s%s shape=%s device=%s dtype=%s threads=%d params=%lld flops_per_token=%.6g tokens_per_step=%lld "
              "median_step_ms=%.2f tok_per_s=%.0f loss=%.4f fwd_ms=%.1f bwd_ms=%.1f opt_ms=%.1f peak_mem_gb=%.2f "
              "losses=%s\n",
              arch == "nanochat2" ? "-nanochat2" : "", fp8 ? "-fp8" : "", s.name.c_str(), device.c_str(), dtype.c_str(), at::get_num_threads(),
              (long long)model->num_params(), model->estimate_flops(), (long long)(s.batch * s.seq), med * 1e3,
              double(s.batch * s.seq) / med, losses.back(), t_fwd / n * 1e3, t_bwd / n * 1e3, t_opt / n * 1e3,
              peak_gb(dev, false), ls.c_str());
  return 0;
}
