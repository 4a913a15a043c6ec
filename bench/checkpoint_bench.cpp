// Checkpoint save/load time and size for a d20 model (nanochat's 561M parameters, vocab 65536)
// with random weights and full optimizer state (Muon momentum, AdamW moments) on the CPU,
// through the same save_checkpoint / find_latest_checkpoint / load_checkpoint path the Trainer
// uses. Usage: build/bin/checkpoint_bench [DEPTH] [DIR]   (default 20, a temp dir; ~7 GB RAM)
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/config.h"
#include "model/gpt.h"
#include "optim/optimizers.h"
#include "ckpt/checkpoint.h"
#include "core/remove_tree.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

static double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int main(int argc, char** argv) {
  const int64_t depth = argc > 1 ? std::atoll(argv[1]) : 20;
  const std::string dir = argc > 2 ? argv[2] : (fs::temp_directory_path() / "kiln_ckpt_bench").string();
  kiln::remove_tree(dir);
  kiln::ModelConfig mc;
  mc.depth = depth;
  mc.seq_len = 2048;
  auto t0 = Clock::now();
  kiln::model::GPT model(kiln::model::GPTConfig::from(mc, 65536));
  model->init_weights(42);
  printf("d%lld: %lld parameters (built in %.1f s)\n", (long long)depth, (long long)model->num_params(), since(t0));

  // Full optimizer state without a (slow on CPU) Muon step: one AdamW step on the embedding and
  // head, and zero Muon momentum buffers loaded through Muon's own state format.
  kiln::OptimConfig oc;
  auto opt = kiln::optim::make_optimizers(model->param_groups(), oc, model->width());
  for (auto& p : model->embedding_params()) p.mutable_grad() = torch::randn_like(p) * 1e-3;
  for (auto& p : model->unembedding_params()) p.mutable_grad() = torch::randn_like(p) * 1e-3;
  opt.adamw.step();
  auto muon_state = opt.muon.state();
  std::map<std::string, torch::Tensor> ms(muon_state.begin(), muon_state.end());
  const auto& mp = opt.muon.params();
  const auto& mn = opt.muon.names();  // state is keyed by parameter name
  for (size_t i = 0; i < mp.size(); ++i) ms["muon." + mn[i] + ".momentum_buffer"] = torch::zeros_like(mp[i]);
  opt.muon.load_state(ms);

  kiln::ckpt::CheckpointWrite w;
  w.step = 1000;
  for (const auto& kv : model->named_parameters()) w.model.emplace_back(kv.key(), kv.value());
  w.optim = opt.state();
  w.rank_state = {{"step", 1000}, {"cursor", {{"batches", 1000}, {"epoch", 0}, {"position", 0}}}};
  w.meta = {{"config", "run:\n  name: bench\n"}};

  t0 = Clock::now();
  const std::string step_dir = kiln::ckpt::save_checkpoint(dir, w, 0);
  const double save_s = since(t0);
  uintmax_t bytes = 0;
  for (const auto& e : fs::directory_iterator(step_dir)) {
    printf("  %-28s %10.1f MB\n", e.path().filename().c_str(), e.file_size() / 1e6);
    bytes += e.file_size();
  }
  t0 = Clock::now();
  const std::string found = kiln::ckpt::find_latest_checkpoint(dir);  // includes CRC-32 of every file
  const double verify_s = since(t0);
  t0 = Clock::now();
  auto ck = kiln::ckpt::load_checkpoint(found, 0, 1);
  const double read_s = since(t0);
  {
    torch::NoGradGuard ng;
    for (auto& kv : model->named_parameters()) kv.value().copy_(ck.model.at(kv.key()));
  }
  opt.load_state(ck.optim);
  const double load_s = since(t0);
  printf("checkpoint d%lld: %.2f GB in %s\n", (long long)depth, bytes / 1e9, step_dir.c_str());
  printf("  save (write + fsync + CRC-32 + rename): %.2f s (%.2f GB/s)\n", save_s, bytes / 1e9 / save_s);
  printf("  find + verify CRC-32:                   %.2f s\n", verify_s);
  printf("  load into model + optimizers:           %.2f s (%.2f GB/s; reading the files: %.2f s)\n", load_s,
         bytes / 1e9 / load_s, read_s);
  kiln::remove_tree(dir);
  return 0;
}
