// Scale model (issue 14): step time of d20/d26/d32 on 1..32 nodes of 8 GPUs, plain DDP with and
// without overlap and ZeRO-1, from per-GPU compute and alpha-beta collective costs; checked
// against measured 2-rank CPU runs. See Note [Scale model] for every formula and assumption.
// bench/scale_model.sh drives it: `--measure` (under mpirun -np 2) times the tiny model's compute
// and MPI's collectives here; then the model prints the table, the CPU check and a PNG.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config.h"       // ModelConfig, OptimConfig
#include "dist/comm.h"         // make_comm, Comm
#include "dist/dist.h"         // init, ctx, finalize
#include "dist/zero1.h"        // partition_params
#include "eval/plot.h"         // plot_png
#include "model/gpt.h"         // GPT
#include "optim/optimizers.h"  // make_optimizers

namespace {

// Note [Scale model]
// Per GPU and step, G = 8n GPUs, total batch 524,288 tokens of 2048, device batch 32 (nanochat):
//   compute   Tc = F * tokens / G / (peak * mfu), F = kiln's FLOPs/token (6 N_non-emb + 12 L C T);
//             accum = tokens / (G * 32 * 2048) micro-steps (at least 1; the device batch shrinks
//             below 32 instead past 2 nodes); backward = 2/3 of a micro-step.
//   optimizer Muon's Newton-Schulz, 5 x (4 m^2 n + 2 m^3) FLOPs per m x n matrix (m <= n), at the
//             same peak * mfu, plus a memory-bound pass of 28 B per parameter at 3.35 TB/s; every
//             GPU does all of it under DDP, 1/G of it under ZeRO-1.
//   comm      S = 4 N bytes (kiln's buckets are fp32), k = ceil(S / 25 MB) buckets, bus bandwidth
//             B = 350 GB/s per GPU in one node, 50 GB/s per GPU (the network) past one node;
//             NCCL's bus-bandwidth rules: all-reduce 2 (G-1)/G S/B, reduce-scatter and
//             all-gather (G-1)/G S/B, a rooted reduce or broadcast S/B; plus a latency per
//             collective of 2 log2(G) alpha, alpha = 2 us (NVLink) or 8 us (network).
//   modes     ddp         Tc + all-reduce + optimizer (nothing overlapped)
//             ddp+overlap the all-reduce runs during the last micro-step's backward: exposed
//                         max(T_ar - T_bwd, T_ar / k) (the last bucket always waits)
//             zero1       kiln as built: per-owner-bucket reduces overlapped like ddp+overlap,
//                         optimizer / G, then one broadcast per parameter (~12 L + 2 of them),
//                         not overlapped
//             zero1-rs    the flat-shard alternative: reduce-scatter overlapped, optimizer / G,
//                         all-gather hidden behind the next step's forward (exposed
//                         max(T_ag - T_fwd, 0))
// The constants (peak 989 TFLOP/s bf16 dense = H100 SXM, mfu 0.40, alpha) are assumptions, not
// measurements: no GPU was available when this was written. The CPU check (--check) uses the same
// formulas with G = 2, n = 1 and the measured compute, optimizer time and MPI alpha / bandwidth.

struct Shape {
  int64_t depth, width, vocab = 65536, seq = 2048;
  int64_t params() const { return 12 * depth * width * width + 2 * vocab * width; }
  int64_t emb() const { return vocab * width; }
  double flops_per_token() const {  // GPTImpl::estimate_flops for n_head * head_dim = width
    return 6.0 * double(params() - emb()) + 12.0 * double(depth) * double(width) * double(seq);
  }
  double muon_flops() const {  // per step: 4 C x C and 2 C x 4C matrices per layer, 5 iterations
    const double c = double(width), sq = 5 * (4 * c * c * c + 2 * c * c * c);
    const double fc = 5 * (4 * c * c * 4 * c + 2 * c * c * c);
    return double(depth) * (4 * sq + 2 * fc);
  }
  int64_t tensors() const { return 6 * depth + 2; }
};

struct Hw {
  double peak = 989e12, mfu = 0.40, hbm = 3.35e12;
  double bw_node = 350e9, bw_net = 50e9, alpha_node = 2e-6, alpha_net = 8e-6;
};

struct Costs {  // one step, seconds
  double compute, bwd_last, fwd, opt, S;
  int G, n;
  double bw, alpha;
  int64_t buckets, tensors;
};

double log2c(int g) { return g <= 1 ? 0.0 : std::ceil(std::log2(double(g))); }
double lat(const Costs& c) { return c.G <= 1 ? 0.0 : 2 * log2c(c.G) * c.alpha; }
double t_allreduce(const Costs& c, double bytes) { return c.G <= 1 ? 0 : 2.0 * (c.G - 1) / c.G * bytes / c.bw; }
double t_half(const Costs& c, double bytes) { return c.G <= 1 ? 0 : double(c.G - 1) / c.G * bytes / c.bw; }
double t_rooted(const Costs& c, double bytes) { return c.G <= 1 ? 0 : bytes / c.bw; }

struct Step {
  double ddp, ddp_overlap, zero1, zero1_rs;
};

Step model_step(const Costs& c) {
  Step s;
  const double ar = t_allreduce(c, c.S) + c.buckets * lat(c);
  s.ddp = c.compute + ar + c.opt;
  s.ddp_overlap = c.compute + std::max(ar - c.bwd_last, ar / std::max<int64_t>(1, c.buckets)) + c.opt;
  // kiln's ZeRO-1: one bucket per owner at least (G buckets when S is small).
  const int64_t zb = std::max<int64_t>(c.buckets, c.G);
  const double red = (c.G <= 1 ? 0 : t_rooted(c, c.S)) + zb * lat(c);
  const double bc = (c.G <= 1 ? 0 : t_rooted(c, c.S)) + c.tensors * lat(c);
  s.zero1 = c.compute + std::max(red - c.bwd_last, red / zb) + c.opt / c.G + bc;
  const double rs = t_half(c, c.S) + c.buckets * lat(c), ag = t_half(c, c.S) + c.buckets * lat(c);
  s.zero1_rs = c.compute + std::max(rs - c.bwd_last, rs / std::max<int64_t>(1, c.buckets)) + c.opt / c.G +
               std::max(ag - c.fwd, 0.0);
  return s;
}

Costs gpu_costs(const Shape& m, int nodes, const Hw& hw) {
  Costs c;
  c.n = nodes;
  c.G = 8 * nodes;
  const double tokens = 524288;
  const double per_gpu = tokens / c.G;
  const double micro = std::min(per_gpu, 32.0 * 2048);
  const double accum = per_gpu / micro;
  c.compute = m.flops_per_token() * per_gpu / (hw.peak * hw.mfu);
  c.bwd_last = c.compute / accum * 2.0 / 3.0;
  c.fwd = c.compute / accum / 3.0;
  c.opt = m.muon_flops() / (hw.peak * hw.mfu) + 28.0 * double(m.params()) / hw.hbm;
  c.S = 4.0 * double(m.params());
  c.bw = nodes == 1 ? hw.bw_node : hw.bw_net;
  c.alpha = nodes == 1 ? hw.alpha_node : hw.alpha_net;
  c.buckets = static_cast<int64_t>(std::ceil(c.S / (25.0 * 1024 * 1024)));
  c.tensors = m.tensors();
  return c;
}

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// --measure, under mpirun -np 2: both ranks at once (as in the real run), 1 thread each: the tiny
// model's fwd+bwd per micro-step of B=8 x T=64, the full and the ZeRO-1 optimizer step, and the
// MPI all-reduce time for a range of sizes (fit: t = a + 2 (G-1)/G S / B).
int measure(int argc, char** argv) {
  const auto& dc = kiln::dist::init(&argc, &argv);
  at::set_num_threads(1);
  auto comm = kiln::dist::make_comm("mpi", torch::kCPU, 600);
  kiln::ModelConfig mc;
  mc.depth = 4;
  mc.width = 128;
  mc.n_head = 4;
  mc.seq_len = 64;
  kiln::model::GPT model(kiln::model::GPTConfig::from(mc, 265));
  model->init_weights(1);
  kiln::OptimConfig oc;
  auto opt = kiln::optim::make_optimizers(model->param_groups(), oc, model->width());
  auto zopt = kiln::optim::make_optimizers(model->param_groups(), oc, model->width());
  std::vector<int64_t> numels;
  std::map<std::string, bool> mine;
  for (const auto& p : model->parameters()) numels.push_back(p.numel());
  const auto owner = kiln::dist::partition_params(numels, dc.world);
  const auto named = model->named_parameters();
  for (size_t i = 0; i < named.size(); ++i) mine[named[i].key()] = owner[i] == dc.rank;
  zopt.set_owner_filter([&](const std::string& n) { return mine.at(n); });
  auto idx = torch::randint(265, {8, 64}, torch::kLong), tgt = torch::randint(265, {8, 64}, torch::kLong);
  std::vector<double> fb, o_full, o_zero;
  for (int it = 0; it < 25; ++it) {
    comm->barrier();
    auto t0 = Clock::now();
    model->forward(idx, tgt).backward();
    fb.push_back(secs(t0));
    comm->barrier();
    t0 = Clock::now();
    opt.step();
    o_full.push_back(secs(t0));
    comm->barrier();
    t0 = Clock::now();
    zopt.step();
    o_zero.push_back(secs(t0));
    opt.zero_grad();
  }
  int64_t n = 0;
  for (auto x : numels) n += x;
  nlohmann::json sizes = nlohmann::json::array();
  for (int64_t bytes : {int64_t(4096), int64_t(65536), int64_t(1) << 20, 4 * n, int64_t(16) << 20}) {
    auto t = torch::ones({bytes / 4}, torch::kFloat);
    std::vector<double> ts;
    for (int it = 0; it < 15; ++it) {
      comm->barrier();
      auto t0 = Clock::now();
      comm->all_reduce(t, kiln::dist::ReduceOp::Avg);
      ts.push_back(secs(t0));
    }
    sizes.push_back({{"bytes", bytes}, {"s", median(ts)}});
  }
  if (dc.rank == 0) {
    nlohmann::json j = {{"params", n}, {"fwd_bwd_s", median(fb)}, {"opt_full_s", median(o_full)},
                        {"opt_zero1_s", median(o_zero)}, {"allreduce", sizes}, {"world", dc.world},
                        {"tensors", int64_t(numels.size())}};
    std::printf("%s\n", j.dump().c_str());
  }
  comm.reset();
  kiln::dist::finalize();
  return 0;
}

// Least-squares fit of t = a + b x over the all-reduce sizes (x = 2 (G-1)/G S): a, 1/b.
std::pair<double, double> fit_alpha_bw(const nlohmann::json& ar, int G) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0, k = 0;
  for (const auto& e : ar) {
    const double x = 2.0 * (G - 1) / G * e["bytes"].get<double>(), y = e["s"].get<double>();
    sx += x, sy += y, sxx += x * x, sxy += x * y, ++k;
  }
  const double b = (k * sxy - sx * sy) / (k * sxx - sx * sx), a = (sy - b * sx) / k;
  return {std::max(a, 0.0), 1.0 / b};
}

std::string arg(int argc, char** argv, const std::string& key, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == key) return argv[i + 1];
  return def;
}

int model_main(int argc, char** argv) {
  Hw hw;
  hw.mfu = std::stod(arg(argc, argv, "--mfu", "0.40"));
  const std::string png = arg(argc, argv, "--png", "scale_model.png");
  const std::vector<int> nodes = {1, 2, 4, 8, 16, 32};
  const Shape shapes[] = {{20, 1280}, {26, 1664}, {32, 2048}};
  std::printf("Scale model (Note [Scale model] in bench/scale_model.cpp): ms per step of 524,288 tokens, 8 GPUs per\n"
              "node, peak %.0f TFLOP/s x MFU %.2f (assumed), NVLink %.0f GB/s, network %.0f GB/s per GPU.\n"
              "d20 has %lld parameters (kiln's test: 560988160).\n\n",
              hw.peak / 1e12, hw.mfu, hw.bw_node / 1e9, hw.bw_net / 1e9, (long long)shapes[0].params());
  std::printf("| model | nodes | GPUs | compute | optim | ddp | ddp+overlap | zero1 (kiln) | zero1-rs | tok/s (best) | "
              "eff. ddp+overlap | eff. zero1 |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<kiln::eval::Series> series;
  const uint32_t colors[] = {0x1f77b4, 0xd62728, 0x2ca02c};
  int si = 0;
  for (const auto& m : shapes) {
    kiln::eval::Series ov, z;
    ov.rgb = z.rgb = colors[si++];
    z.points = true;
    Step base{};
    for (int n : nodes) {
      const Costs c = gpu_costs(m, n, hw);
      const Step s = model_step(c);
      if (n == 1) base = s;
      const double best = std::min({s.ddp_overlap, s.zero1, s.zero1_rs});
      std::printf("| d%lld | %d | %d | %.1f | %.2f | %.1f | %.1f | %.1f | %.1f | %.3g | %.0f%% | %.0f%% |\n",
                  (long long)m.depth, n, c.G, c.compute * 1e3, c.opt * 1e3, s.ddp * 1e3, s.ddp_overlap * 1e3,
                  s.zero1 * 1e3, s.zero1_rs * 1e3, 524288.0 / best, 100.0 * base.ddp_overlap / (n * s.ddp_overlap),
                  100.0 * base.zero1 / (n * s.zero1));
      // Plot: scaling efficiency in % of linear from 1 node of ddp+overlap (x: log2 nodes), line =
      // ddp+overlap, markers = kiln's zero1.
      ov.x.push_back(std::log2(n)), ov.y.push_back(100.0 * base.ddp_overlap / (n * s.ddp_overlap));
      z.x.push_back(std::log2(n)), z.y.push_back(100.0 * base.ddp_overlap / (n * s.zero1));
    }
    series.push_back(ov);
    series.push_back(z);
  }
  kiln::eval::Series floor;  // pins the y axis at 0
  floor.rgb = 0x999999;
  floor.x = {0, std::log2(nodes.back())}, floor.y = {0, 0};
  series.push_back(floor);
  kiln::eval::plot_png(png, series, 720, 440);
  std::printf("\nPNG: %s (x: log2 nodes, y: scaling efficiency %% vs 1 node of ddp+overlap; lines ddp+overlap,\n"
              "markers kiln's zero1; blue d20, red d26, green d32)\n",
              png.c_str());

  // The check against the measured 2-rank CPU runs.
  const std::string cpu = arg(argc, argv, "--cpu", "");
  if (cpu.empty()) return 0;
  std::ifstream in(cpu);
  const auto j = nlohmann::json::parse(in);
  const int G = j["world"].get<int>();
  const auto [alpha, bw] = fit_alpha_bw(j["allreduce"], G);
  const double S = 4.0 * j["params"].get<double>();
  Costs c;
  c.G = G, c.n = 1, c.bw = bw, c.S = S, c.buckets = 1, c.tensors = j["tensors"].get<int64_t>();
  c.alpha = G > 1 ? alpha / (2 * log2c(G)) : 0;  // lat() = 2 log2(G) alpha = the fitted intercept
  const double accum = std::stod(arg(argc, argv, "--accum", "1"));
  c.compute = accum * j["fwd_bwd_s"].get<double>();
  c.bwd_last = j["fwd_bwd_s"].get<double>() * 2.0 / 3.0;
  c.fwd = j["fwd_bwd_s"].get<double>() / 3.0;
  c.opt = j["opt_full_s"].get<double>();
  Step s = model_step(c);
  // kiln's ZeRO-1 optimizer time was measured directly (owned parameters only), not as opt / G.
  s.zero1 += j["opt_zero1_s"].get<double>() - c.opt / G;
  const double meas_ddp = std::stod(arg(argc, argv, "--measured-ddp", "0"));
  const double meas_z = std::stod(arg(argc, argv, "--measured-zero1", "0"));
  std::printf("\nCPU check, 2 ranks on this machine (tiny model, %lld params, %g micro-step(s) of 8 x 64 per rank):\n"
              "  measured here: fwd+bwd %.1f ms, optimizer %.1f ms (ZeRO-1 share %.1f ms), MPI all-reduce fit:\n"
              "  latency %.0f us, bus bandwidth %.2f GB/s\n",
              (long long)j["params"].get<int64_t>(), accum, j["fwd_bwd_s"].get<double>() * 1e3, c.opt * 1e3,
              j["opt_zero1_s"].get<double>() * 1e3, alpha * 1e6, bw / 1e9);
  std::printf("  | mode | model ms | measured ms (./pretrain, median dt) | model / measured |\n  |---|---|---|---|\n");
  std::printf("  | ddp (no overlap) | %.1f | | |\n", s.ddp * 1e3);
  std::printf("  | ddp+overlap | %.1f | %.1f | %.2f |\n", s.ddp_overlap * 1e3, meas_ddp * 1e3,
              meas_ddp > 0 ? s.ddp_overlap / meas_ddp : 0.0);
  std::printf("  | zero1 (kiln) | %.1f | %.1f | %.2f |\n", s.zero1 * 1e3, meas_z * 1e3,
              meas_z > 0 ? s.zero1 / meas_z : 0.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    for (int i = 1; i < argc; ++i)
      if (std::string(argv[i]) == "--measure") return measure(argc, argv);
    return model_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "scale_model: %s\n", e.what());
    return 1;
  }
}
