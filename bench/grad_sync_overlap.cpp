// Bench: how much gradient communication GradSync leaves exposed (not hidden behind backward),
// with and without overlap, on CPU with MpiComm. Run under 2 ranks:
//   CI=true tests/run_mpi.sh 2 build/bin/bench_grad_sync_overlap [--width 512 --layers 8 --batch 32 --iters 30 --bucket-mb 1]
// Three identical models (no GradSync, overlap=false, overlap=true) take turns each iteration so
// that load from other processes hits all three alike; times are the slowest rank's, median.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "dist/dist.h"
#include "dist/grad_sync.h"

namespace {

struct Opts {
  int64_t width = 512, layers = 8, batch = 32, iters = 30;
  double bucket_mb = 1.0;
};

Opts parse(int argc, char** argv) {
  Opts o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    double v = std::atof(argv[i + 1]);
    if (k == "--width") o.width = int64_t(v);
    else if (k == "--layers") o.layers = int64_t(v);
    else if (k == "--batch") o.batch = int64_t(v);
    else if (k == "--iters") o.iters = int64_t(v);
    else if (k == "--bucket-mb") o.bucket_mb = v;
    else {
      fprintf(stderr, "unknown flag %s (--width --layers --batch --iters --bucket-mb)\n", k.c_str());
      std::exit(2);
    }
  }
  return o;
}

torch::nn::Sequential make_model(const Opts& o) {
  torch::manual_seed(0);
  torch::nn::Sequential m;
  for (int64_t l = 0; l < o.layers; ++l) {
    m->push_back(torch::nn::Linear(o.width, o.width));
    m->push_back(torch::nn::ReLU());
  }
  return m;
}

// Forwards to the real Comm and notes when each all-reduce is launched, to show how early the
// overlapped buckets start relative to the end of backward.
class LaunchClock : public kiln::dist::Comm {
 public:
  explicit LaunchClock(kiln::dist::Comm& c) : c_(c) {}
  std::shared_ptr<kiln::dist::Work> all_reduce(torch::Tensor& t, kiln::dist::ReduceOp op, bool async) override {
    launches.push_back(std::chrono::steady_clock::now());
    return c_.all_reduce(t, op, async);
  }
  std::shared_ptr<kiln::dist::Work> reduce(torch::Tensor& t, kiln::dist::ReduceOp op, int root, bool async) override {
    launches.push_back(std::chrono::steady_clock::now());
    return c_.reduce(t, op, root, async);
  }
  std::shared_ptr<kiln::dist::Work> reduce_scatter(const torch::Tensor& in, torch::Tensor& out,
                                                   kiln::dist::ReduceOp op, bool async) override {
    return c_.reduce_scatter(in, out, op, async);
  }
  std::shared_ptr<kiln::dist::Work> all_gather(const torch::Tensor& in, torch::Tensor& out, bool async) override {
    return c_.all_gather(in, out, async);
  }
  void broadcast(torch::Tensor& t, int root) override { c_.broadcast(t, root); }
  void barrier() override { c_.barrier(); }
  int rank() const override { return c_.rank(); }
  int world() const override { return c_.world(); }
  std::string name() const override { return c_.name(); }
  void progress() override { c_.progress(); }
  std::vector<std::chrono::steady_clock::time_point> launches;

 private:
  kiln::dist::Comm& c_;
};

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// Median over iterations of the slowest rank's time.
double slowest_median(kiln::dist::Comm& c, std::vector<double> v) {
  auto t = torch::tensor(v, torch::kDouble);
  c.all_reduce(t, kiln::dist::ReduceOp::Max);
  std::vector<double> m(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  std::sort(m.begin(), m.end());
  return m[m.size() / 2];
}

int body(int argc, char** argv) {
  const auto& dc = kiln::dist::init(&argc, &argv);
  Opts o = parse(argc, argv);
  torch::set_num_threads(1);  // one core per rank: the ranks share the machine
  auto comm = kiln::dist::make_comm("mpi", torch::kCPU, 120);

  torch::nn::Sequential base = make_model(o), serial = make_model(o), overlapped = make_model(o);
  kiln::dist::GradSync sync_serial(serial->parameters(), *comm, o.bucket_mb, kiln::dist::Overlap::AfterBackward);
  LaunchClock clock(*comm);
  kiln::dist::GradSync sync_overlap(overlapped->parameters(), clock, o.bucket_mb, kiln::dist::Overlap::WithBackward);
  int64_t numel = 0;
  for (auto& p : base->parameters()) numel += p.numel();

  torch::manual_seed(1 + dc.rank);
  auto x = torch::randn({o.batch, o.width});
  std::vector<double> t_base, t_serial, t_overlap, f_serial, f_overlap, lead_first;
  for (int64_t it = 0; it < o.iters + 3; ++it) {  // 3 warm-up iterations
    const bool keep = it >= 3;
    {  // backward alone
      for (auto& p : base->parameters()) p.mutable_grad() = torch::Tensor();
      comm->barrier();
      auto t0 = std::chrono::steady_clock::now();
      base->forward(x).square().mean().backward();
      if (keep) t_base.push_back(ms_since(t0));
    }
    for (int mode = 0; mode < 2; ++mode) {
      auto& m = mode == 0 ? serial : overlapped;
      auto& s = mode == 0 ? sync_serial : sync_overlap;
      s.zero_grad();
      clock.launches.clear();
      comm->barrier();
      auto t0 = std::chrono::steady_clock::now();
      s.arm();
      m->forward(x).square().mean().backward();
      auto t1 = std::chrono::steady_clock::now();
      s.finish();
      if (keep) {
        (mode == 0 ? t_serial : t_overlap).push_back(ms_since(t0));
        (mode == 0 ? f_serial : f_overlap).push_back(ms_since(t1));
        if (mode == 1 && !clock.launches.empty())
          lead_first.push_back(std::chrono::duration<double, std::milli>(t1 - clock.launches.front()).count());
      }
    }
  }
  const double b = slowest_median(*comm, t_base), s = slowest_median(*comm, t_serial);
  const double ov = slowest_median(*comm, t_overlap), fs = slowest_median(*comm, f_serial);
  const double fo = slowest_median(*comm, f_overlap);
  const double lead = lead_first.size() == t_overlap.size() ? slowest_median(*comm, lead_first) : 0.0;
  if (dc.rank == 0) {
    printf("[bench] grad_sync_overlap: %d ranks (%s, CPU, 1 thread each), %lld x Linear(%lld,%lld)+ReLU, "
           "%.1f MB of fp32 grads in %lld buckets of <= %.2f MB, batch %lld/rank, median of %lld iters\n",
           dc.world, comm->name().c_str(), (long long)o.layers, (long long)o.width, (long long)o.width,
           numel * 4.0 / (1 << 20), (long long)sync_overlap.num_buckets(), o.bucket_mb, (long long)o.batch,
           (long long)o.iters);
    printf("  forward+backward, no communication      : %8.2f ms\n", b);
    printf("  overlap=false: fwd+bwd+finish           : %8.2f ms   exposed comm %7.2f ms (finish() alone %.2f ms)\n",
           s, s - b, fs);
    printf("  overlap=true : fwd+bwd+finish           : %8.2f ms   exposed comm %7.2f ms (finish() alone %.2f ms)\n",
           ov, ov - b, fo);
    printf("  overlap=true : the first bucket's all-reduce was launched %.2f ms before backward returned\n", lead);
    printf("  exposed comm = step time - step time without communication (slowest rank, median)\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return kiln::dist::guarded_main(body, argc, argv); }
