// kiln_fake_pretrain: a stand-in for ./pretrain that keeps the trainer's distributed contract
// (same CLI, GradSync steps over MpiComm, stop signal -> agreed checkpoint -> STOPPED_EARLY ->
// exit 0, --resume from the newest DONE step) so the launch/slurm scripts and the dead-rank and
// signal tests run before the real trainer exists. Only the dist pieces are real.
//   kiln_fake_pretrain CONFIG [run.dir=D] [train.max_steps=N] [checkpoint.every=K] [probe.step_ms=M]
//   kiln_fake_pretrain --resume D/ckpt [same overrides]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "core/error.h"
#include "dist/comm.h"
#include "dist/dist.h"
#include "dist/grad_sync.h"
#include "dist/signals.h"

namespace fs = std::filesystem;
using kiln::Error;

namespace {

struct Args {
  std::string config, resume, run_dir;
  int64_t max_steps = 20, every = 5, step_ms = 100;
};

Args parse(int argc, char** argv) {
  Args a;
  std::map<std::string, std::string> kv;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--resume" && i + 1 < argc) a.resume = argv[++i];
    else if (auto eq = s.find('='); eq != std::string::npos) kv[s.substr(0, eq)] = s.substr(eq + 1);
    else if (a.config.empty()) a.config = s;
    else throw Error("fake_pretrain: unexpected argument '" + s + "'", "CONFIG [section.key=value ...]");
  }
  if (a.config.empty() && a.resume.empty()) throw Error("fake_pretrain: no config", "give CONFIG or --resume DIR");
  if (!a.config.empty() && !fs::exists(a.config)) throw Error("fake_pretrain: config " + a.config + " not found");
  a.run_dir = kv.count("run.dir") ? kv["run.dir"] : (a.resume.empty() ? "runs/fake" : fs::path(a.resume).parent_path().string());
  if (kv.count("train.max_steps")) a.max_steps = std::stoll(kv["train.max_steps"]);
  if (kv.count("checkpoint.every")) a.every = std::stoll(kv["checkpoint.every"]);
  if (kv.count("probe.step_ms")) a.step_ms = std::stoll(kv["probe.step_ms"]);
  return a;
}

// The newest step_NNNNNNNN/ with a DONE marker, or -1.
int64_t newest_done(const fs::path& ckpt) {
  int64_t best = -1;
  if (!fs::exists(ckpt)) return best;
  for (const auto& e : fs::directory_iterator(ckpt)) {
    std::string n = e.path().filename().string();
    if (n.rfind("step_", 0) == 0 && fs::exists(e.path() / "DONE")) best = std::max<int64_t>(best, std::stoll(n.substr(5)));
  }
  return best;
}

// Every rank writes its state, then rank 0 writes DONE after a barrier (ARCHITECTURE.md §3).
void checkpoint(const fs::path& ckpt, int64_t next_step, int rank) {
  char name[32];
  snprintf(name, sizeof(name), "step_%08lld", static_cast<long long>(next_step));
  fs::path dir = ckpt / name;
  fs::create_directories(dir);
  std::ofstream(dir / ("state_rank_" + std::to_string(rank) + ".txt")) << next_step << "\n";
  kiln::dist::barrier();
  if (rank == 0) std::ofstream(dir / "DONE") << "\n";
  kiln::dist::barrier();
}

int body(int argc, char** argv) {
  const auto& dc = kiln::dist::init(&argc, &argv);
  kiln::dist::install_stop_handlers();
  Args a = parse(argc, argv);
  const fs::path run(a.run_dir), ckpt = a.resume.empty() ? run / "ckpt" : fs::path(a.resume);
  fs::create_directories(run / "pids");
  std::ofstream(run / "pids" / ("rank_" + std::to_string(dc.rank))) << getpid() << "\n";
  int64_t start = 0;
  if (!a.resume.empty()) {
    start = newest_done(ckpt);
    if (start < 0) throw Error("--resume " + a.resume + ": no complete checkpoint (step_*/DONE)");
  }
  auto comm = kiln::dist::make_comm("mpi", torch::kCPU, 60);
  torch::manual_seed(0);
  torch::nn::Linear model(16, 16);
  kiln::dist::GradSync sync(model->named_parameters(), *comm);
  if (dc.rank == 0) printf("[fake] world %d, steps %lld..%lld\n", dc.world, (long long)start, (long long)a.max_steps);
  fflush(stdout);
  for (int64_t step = start; step < a.max_steps; ++step) {
    // The step boundary: all ranks agree to stop, checkpoint, mark, exit 0.
    if (kiln::dist::stop_requested()) {
      checkpoint(ckpt, step, dc.rank);
      std::ofstream(run / ("stopped_rank_" + std::to_string(dc.rank))) << step << "\n";
      if (dc.rank == 0) {
        std::ofstream(run / "STOPPED_EARLY") << "signal " << kiln::dist::stop_signal() << " at step " << step << "\n";
        printf("[fake] stop requested: checkpointed before step %lld, exiting 0\n", (long long)step);
      }
      return 0;
    }
    sync.zero_grad();
    sync.arm();
    model->forward(torch::randn({4, 16})).sum().backward();
    sync.finish();
    std::this_thread::sleep_for(std::chrono::milliseconds(a.step_ms));
    if (dc.rank == 0) std::ofstream(run / "steps.txt", std::ios::app) << "step " << step << " world " << dc.world << "\n";
    if ((step + 1) % a.every == 0 && step + 1 < a.max_steps) checkpoint(ckpt, step + 1, dc.rank);
  }
  if (dc.rank == 0) printf("[fake] finished %lld steps\n", (long long)a.max_steps);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return kiln::dist::guarded_main(body, argc, argv); }
