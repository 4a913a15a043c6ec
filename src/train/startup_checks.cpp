// Start-up agreement checks; see startup_checks.h. Only dist/'s small host collectives are used.
#include "train/startup_checks.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "dist/dist.h"
#include "core/sha256.h"

namespace fs = std::filesystem;

namespace kiln::train {
namespace {

// The first 60 bits of a hex digest, as an int64 the dist collectives carry.
int64_t hash60(const std::string& hex) { return static_cast<int64_t>(std::stoull(hex.substr(0, 15), nullptr, 16)); }

std::string rank_list(const std::vector<int64_t>& v, int64_t want) {
  std::string out;
  for (size_t r = 0; r < v.size(); ++r)
    if (v[r] != want) out += (out.empty() ? "" : ", ") + std::to_string(r);
  return out;
}

}  // namespace

void check_shared_checkpoint_dir(const std::string& dir) {
  const auto& dc = dist::ctx();
  if (dc.world == 1) return;
  std::string token;
  if (dc.rank == 0) {
    std::random_device rd;
    token = std::to_string(rd()) + "-" + std::to_string(::getpid()) + "-" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    fs::create_directories(dir);
    std::ofstream(fs::path(dir) / (".kiln_shared_check_" + token)) << token;
  }
  token = dist::broadcast_string(token);
  dist::barrier();  // rank 0's file is closed before anyone looks
  const fs::path probe = fs::path(dir) / (".kiln_shared_check_" + token);
  std::string seen;
  {
    std::ifstream in(probe);
    std::getline(in, seen);
  }
  const auto ok = dist::all_gather(seen == token ? 1 : 0);
  dist::barrier();
  if (dc.rank == 0) fs::remove(probe);
  const std::string bad = rank_list(ok, 1);
  if (!bad.empty())
    throw Error("checkpoint.dir = " + dir + " is not shared: rank(s) " + bad + " cannot see the file rank 0 (host " +
                    (dc.rank == 0 ? dc.host : std::string("?")) + ") wrote there (this is rank " +
                    std::to_string(dc.rank) + " on host " + dc.host + ")",
                "kiln needs checkpoint.dir (and run.dir) on a filesystem every node mounts (NFS, Lustre, GPFS); "
                "set checkpoint.dir=/shared/path/ckpt");
}

void check_ranks_agree(const std::string& config_yaml, const std::string& tokenizer_sha256) {
  const auto& dc = dist::ctx();
  if (dc.world == 1) return;
  const auto cfg = dist::all_gather(hash60(sha256_hex(config_yaml)));
  const auto tok = dist::all_gather(hash60(sha256_hex(tokenizer_sha256)));
  const std::string bad_cfg = rank_list(cfg, cfg[0]), bad_tok = rank_list(tok, tok[0]);
  if (!bad_cfg.empty())
    throw Error("rank(s) " + bad_cfg + " resolved a different config than rank 0 (this is rank " +
                    std::to_string(dc.rank) + " on host " + dc.host + ")",
                "start every rank with the same config file and overrides, and the same files behind it");
  if (!bad_tok.empty())
    throw Error("rank(s) " + bad_tok + " loaded a different tokenizer (SHA-256) than rank 0 (this is rank " +
                    std::to_string(dc.rank) + " on host " + dc.host + ")",
                "data.tokenizer must be the same file on every node");
}

void check_resume_device(const nlohmann::json& meta, const std::string& saved_run_device, const std::string& device_type,
                         const std::string& ckpt_dir) {
  std::string saved;
  if (meta.is_object() && meta.contains("device") && meta["device"].is_string()) saved = meta["device"].get<std::string>();
  else if (saved_run_device == "cpu" || saved_run_device == "cuda") saved = saved_run_device;
  if (saved.empty() || saved == device_type) return;
  throw Error("checkpoint " + ckpt_dir + " was trained on " + saved + "; this resume would run on " + device_type +
                  ", which changes the math (bf16 autocast and bf16 Newton-Schulz on CUDA, fp32 on CPU)",
              "resume with run.device=" + saved + ", or start a new run initialised from these weights");
}

void check_resume_world(int saved_world, int world, int64_t total_batch_size, int64_t device_batch_size,
                        int64_t seq_len, const std::string& ckpt_dir) {
  const int64_t per_rank = device_batch_size * seq_len;  // tokens of one micro-step on one rank
  if (world == saved_world || total_batch_size % (per_rank * world) == 0) return;
  std::string ok;
  int shown = 0;
  for (int64_t w = 1; w <= total_batch_size / per_rank && shown < 12; ++w)
    if (total_batch_size % (per_rank * w) == 0) ok += (shown++ ? ", " : "") + std::to_string(w);
  throw Error("checkpoint " + ckpt_dir + " was written by " + std::to_string(saved_world) + " rank(s); " +
                  std::to_string(world) + " ranks cannot keep train.total_batch_size = " +
                  std::to_string(total_batch_size) + " tokens per step: it is not divisible by " +
                  std::to_string(world) + " ranks x train.device_batch_size " + std::to_string(device_batch_size) +
                  " x model.seq_len " + std::to_string(seq_len),
              "resume on a rank count that divides it (mpirun -np N with N in {" + ok +
                  "}); gradient accumulation absorbs the difference. The batch size cannot change on "
                  "--resume (it changes the optimisation): start a new run initialised from these weights for that");
}

}  // namespace kiln::train
