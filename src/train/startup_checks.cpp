// Start-up agreement checks; see startup_checks.h. Only dist/'s small host collectives are used.
#include "train/startup_checks.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "core/error.h"
#include "dist/dist.h"
#include "core/sha256.h"
#include "dist/hosts.h"

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

// The hosts of the ranks in v that differ from `want`, each once ("node7, node8").
std::string host_list(const std::vector<int64_t>& v, int64_t want) {
  std::string out;
  std::set<std::string> seen;
  for (size_t r = 0; r < v.size(); ++r)
    if (v[r] != want && seen.insert(dist::hosts()[r]).second) out += (out.empty() ? "" : ", ") + dist::hosts()[r];
  return out;
}

// The first rank whose value differs from rank 0's (callers know there is one).
int first_other(const std::vector<int64_t>& v) {
  for (size_t r = 1; r < v.size(); ++r)
    if (v[r] != v[0]) return static_cast<int>(r);
  return 0;
}

// A YAML document as "section.key" -> value text (sequences and maps below a key stay whole).
void flatten(const YAML::Node& n, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (n.IsMap() && (prefix.empty() || prefix.find('.') == std::string::npos)) {
    for (const auto& kv : n) flatten(kv.second, prefix.empty() ? kv.first.as<std::string>() : prefix + "." + kv.first.as<std::string>(), out);
    return;
  }
  YAML::Emitter e;
  e << YAML::Flow << n;
  out[prefix] = e.c_str();
}

// The keys whose values differ between two resolved configs: "key: A (rank 0) vs B (rank r)".
std::string config_difference(const std::string& yaml0, const std::string& yaml_r, int r) {
  std::map<std::string, std::string> a, b;
  flatten(YAML::Load(yaml0), "", a);
  flatten(YAML::Load(yaml_r), "", b);
  std::string out;
  for (const auto& [k, v] : a) {
    const auto it = b.find(k);
    const std::string w = it == b.end() ? "(missing)" : it->second;
    if (w != v) out += (out.empty() ? "" : "; ") + k + ": " + v + " on rank 0 vs " + w + " on rank " + std::to_string(r);
  }
  for (const auto& [k, w] : b)
    if (!a.count(k)) out += (out.empty() ? "" : "; ") + k + ": (missing) on rank 0 vs " + w + " on rank " + std::to_string(r);
  return out.empty() ? "the YAML text differs" : out;
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
    throw Error("checkpoint.dir = " + dir + " is not shared: rank(s) " + bad + " on host(s) " + host_list(ok, 1) +
                    " cannot see the file rank 0 (host " + dist::hosts()[0] + ") wrote there",
                "kiln needs checkpoint.dir (and run.dir) on a filesystem every node mounts (NFS, Lustre, GPFS); "
                "set checkpoint.dir=/shared/path/ckpt");
}

void check_ranks_agree(const std::string& config_yaml, const std::string& tokenizer_sha256,
                       const std::string& tokenizer_path) {
  const auto& dc = dist::ctx();
  if (dc.world == 1) return;
  const auto cfg = dist::all_gather(hash60(sha256_hex(config_yaml)));
  const auto tok = dist::all_gather(hash60(sha256_hex(tokenizer_sha256)));
  const std::string bad_cfg = rank_list(cfg, cfg[0]), bad_tok = rank_list(tok, tok[0]);
  if (!bad_cfg.empty()) {  // every rank learns what differs: rank 0's and the first other rank's config
    const int r = first_other(cfg);
    const std::string yaml0 = dist::broadcast_string(config_yaml);
    const std::string yaml_r = dist::broadcast_string_from(config_yaml, r);
    const std::string diff = config_difference(yaml0, yaml_r, r);
    throw Error("rank(s) " + bad_cfg + " on host(s) " + host_list(cfg, cfg[0]) + " resolved a different config than rank 0 (host " +
                    dist::hosts()[0] + "): " + diff,
                "start every rank with the same config file and overrides, and the same files behind it on every node");
  }
  if (!bad_tok.empty()) {
    const int r = first_other(tok);
    const std::string sha0 = dist::broadcast_string(tokenizer_sha256);
    const std::string sha_r = dist::broadcast_string_from(tokenizer_sha256, r);
    throw Error("rank(s) " + bad_tok + " on host(s) " + host_list(tok, tok[0]) + " loaded a different tokenizer than rank 0 (host " +
                    dist::hosts()[0] + "): data.tokenizer = " + tokenizer_path + " has SHA-256 " + sha0 + " on rank 0 but " +
                    sha_r + " on rank " + std::to_string(r),
                "data.tokenizer must be the same file on every node (copy it to the shared filesystem)");
  }
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
