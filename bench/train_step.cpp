// Training-step throughput of kiln's GPT: forward + backward + Muon/AdamW step on random tokens,
// for a named shape (tiny, shakespeare_char), printed as one key=value line that
// bench/train_step.sh sets beside PyTorch eager (bench/train_step_ref.py) on the same machine.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/config.h"        // ModelConfig, OptimConfig
#include "model/gpt.h"          // GPT, GPTConfig
#include "optim/optimizers.h"   // make_optimizers

namespace {

struct Shape {
  const char* name;
  int64_t layers, width, heads, seq, vocab, batch, warmup, steps;
};
// The same table is in bench/train_step_ref.py.
constexpr Shape kShapes[] = {
    {"tiny", 4, 128, 4, 64, 265, 16, 5, 30},
    {"shakespeare_char", 6, 384, 6, 256, 265, 64, 1, 3},
};

}  // namespace

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "tiny";
  const Shape* s = nullptr;
  for (const auto& k : kShapes)
    if (which == k.name) s = &k;
  if (!s) {
    std::fprintf(stderr, "usage: %s tiny|shakespeare_char [threads] [steps]\n", argv[0]);
    return 2;
  }
  if (argc > 2) at::set_num_threads(std::atoi(argv[2]));
  const int64_t steps = argc > 3 ? std::atoll(argv[3]) : s->steps;
  kiln::ModelConfig m;
  m.depth = s->layers;
  m.width = s->width;
  m.n_head = s->heads;
  m.seq_len = s->seq;
  kiln::model::GPT model(kiln::model::GPTConfig::from(m, s->vocab));
  model->init_weights(42);
  kiln::OptimConfig o;
  auto opt = kiln::optim::make_optimizers(model->param_groups(), o, model->width());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  std::vector<double> times;
  double last_loss = 0, t_fwd = 0, t_bwd = 0, t_opt = 0;  // summed over the timed steps
  using clock = std::chrono::steady_clock;
  auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  for (int64_t i = 0; i < s->warmup + steps; ++i) {
    auto idx = torch::randint(s->vocab, {s->batch, s->seq}, gen, torch::kLong);
    auto tgt = torch::randint(s->vocab, {s->batch, s->seq}, gen, torch::kLong);
    const auto t0 = clock::now();
    auto loss = model->forward(idx, tgt);
    const double f = since(t0);
    loss.backward();
    const double b = since(t0);
    opt.set_schedule(i, 1000, o);
    opt.step();
    opt.zero_grad();
    last_loss = loss.item<double>();
    const double dt = since(t0);
    if (i >= s->warmup) {
      times.push_back(dt);
      t_fwd += f;
      t_bwd += b - f;
      t_opt += dt - b;
    }
  }
  std::sort(times.begin(), times.end());
  const double med = times[times.size() / 2];
  const double n = double(times.size());
  std::printf("impl=kiln shape=%s threads=%d params=%lld tokens_per_step=%lld median_step_ms=%.2f tok_per_s=%.0f "
              "loss=%.4f fwd_ms=%.1f bwd_ms=%.1f opt_ms=%.1f\n",
              s->name, at::get_num_threads(), (long long)model->num_params(), (long long)(s->batch * s->seq),
              med * 1e3, double(s->batch * s->seq) / med, last_loss, t_fwd / n * 1e3, t_bwd / n * 1e3, t_opt / n * 1e3);
  return 0;
}
