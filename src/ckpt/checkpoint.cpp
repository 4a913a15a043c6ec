// Checkpoint save / find / verify / load; see checkpoint.h. Rank 0 owns the directory dance
// (temp dir -> files -> checksums -> meta.json -> DONE -> rename); other ranks only write their
// own files between two barriers.
#include "ckpt/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <vector>

#include "core/error.h"
#include "core/fault_point.h"  // hooks::fault_point (KILN_FAULT)
#include "core/json_file.h"
#include "core/log.h"
#include "dist/dist.h"
#include "model/fused_ops.h"
#include "core/remove_tree.h"

namespace fs = std::filesystem;

namespace kiln::ckpt {
namespace {

std::string step_name(int64_t step) {
  char buf[32];
  snprintf(buf, sizeof(buf), "step_%08" PRId64, step);
  return buf;
}
std::string rank_file(const char* prefix, int rank, const char* ext) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%s_rank_%05d.%s", prefix, rank, ext);
  return buf;
}

// Flush a file (or directory) to disk so that a rename after it is durable.
void fsync_path(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
  out.close();
  if (!out) throw Error("cannot write " + p.string(), "check free disk space and permissions");
  fsync_path(p);
}

uint32_t crc32_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error("cannot read " + p.string());
  std::vector<char> buf(1 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(in.gcount()));
  }
  return static_cast<uint32_t>(crc);
}

// meta.json "format_version" this kiln writes and reads. 2: optimizer state keyed by parameter
// name, each tensor in one optim_rank_* file. Version 1 keyed it by position, per rank: its
// weights and checksums still read (sample, eval, chat, init.from), its optimizer state does not.
constexpr int kFormatVersion = 2;
constexpr int kOldestWeightsVersion = 1;

// Step directories named step_NNNNNNNN (complete or not), with their step.
std::vector<std::pair<int64_t, fs::path>> step_dirs(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  static const std::regex re("step_([0-9]{8})");
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (e.is_directory() && std::regex_match(name, m, re)) out.emplace_back(std::stoll(m[1].str()), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::pair<int64_t, fs::path>> complete_steps(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  for (auto& [step, path] : step_dirs(dir)) {
    if (fs::exists(path / "DONE")) out.emplace_back(step, path);
    else log::warn("[ckpt] skipping %s: no DONE marker (an interrupted save)", path.c_str());
  }
  return out;
}

}  // namespace

std::string save_checkpoint(const std::string& dir, const CheckpointWrite& w, int64_t keep_last) {
  const auto& dc = dist::ctx();
  const fs::path root(dir), final_dir = root / step_name(w.step), tmp = root / ("." + step_name(w.step) + ".tmp");
  if (dc.rank == 0) {
    fs::create_directories(root);
    recover_checkpoint_dir(root.string());  // a crash mid-save must not block this save
    kiln::remove_tree(tmp);  // leftovers of a save that crashed
    fs::create_directories(tmp);
  }
  dist::barrier();
  // The RNG states share the rank's optimizer file (format_version 2 keeps them there).
  model::NamedTensors optim_file = w.optim;
  optim_file.insert(optim_file.end(), w.rng.begin(), w.rng.end());
  model::save_safetensors((tmp / rank_file("optim", dc.rank, "safetensors")).string(), optim_file);
  fsync_path(tmp / rank_file("optim", dc.rank, "safetensors"));
  write_text(tmp / rank_file("state", dc.rank, "json"), w.rank_state.dump(2) + "\n");
  if (dc.rank == 0) {
    model::save_safetensors((tmp / "model.safetensors").string(), w.model, {{"format", "kiln.model"}});
    hooks::fault_point("before_fsync", w.step);
    fsync_path(tmp / "model.safetensors");
    if (!w.tokenizer_path.empty()) {
      fs::copy_file(w.tokenizer_path, tmp / "tokenizer.json", fs::copy_options::overwrite_existing);
      fsync_path(tmp / "tokenizer.json");
    }
  }
  hooks::fault_point("after_tensors", w.step);
  dist::barrier();  // every rank's files are on disk
  if (dc.rank == 0) {
    nlohmann::json meta = w.meta;
    meta["format"] = "kiln.checkpoint";
    meta["format_version"] = kFormatVersion;
    meta["step"] = w.step;
    meta["world_size"] = dc.world;
    meta["rms_norm"] = model::fused_rms_norm() ? "fused" : "aten";
    nlohmann::json sums = nlohmann::json::object();
    for (const auto& e : fs::directory_iterator(tmp))
      sums[e.path().filename().string()] = crc32_file(e.path());
    meta["crc32"] = sums;
    write_text(tmp / "meta.json", meta.dump(2) + "\n");
    hooks::fault_point("before_done", w.step);
    write_text(tmp / "DONE", "");
    fsync_path(tmp);
    hooks::fault_point("before_rename", w.step);
    // A checkpoint of the same step (saved again after a resume) is replaced only now; a crash
    // between the two renames is repaired by recover_checkpoint_dir.
    const fs::path old = root / ("." + step_name(w.step) + ".old");
    if (fs::exists(final_dir)) {
      fs::rename(final_dir, old);
      hooks::fault_point("between_renames", w.step);
    }
    fs::rename(tmp, final_dir);
    fsync_path(root);
    kiln::remove_tree(old);
    if (keep_last > 0) {
      // Rename first (atomic), then delete: a crash mid-delete leaves a .prune directory that
      // nothing reads, never a half-deleted step_N that still looks complete.
      auto steps = complete_steps(root);
      for (size_t i = 0; i + static_cast<size_t>(keep_last) < steps.size(); ++i) {
        const fs::path doomed = root / ("." + steps[i].second.filename().string() + ".prune");
        fs::rename(steps[i].second, doomed);
        hooks::fault_point("during_pruning", w.step);
        kiln::remove_tree(doomed);
      }
    }
  }
  dist::barrier();
  return final_dir.string();
}

std::string newest_complete_step(const std::string& dir) {
  auto steps = complete_steps(dir);
  return steps.empty() ? "" : steps.back().second.string();
}

std::string verify_checkpoint(const std::string& step_dir) {
  const fs::path d(step_dir);
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(read_text_file((d / "meta.json").string()));
  } catch (const std::exception& e) {
    return (d / "meta.json").string() + " is unreadable (" + e.what() + ")";
  }
  if (!meta.is_object() || meta.value("format", "") != "kiln.checkpoint")
    return (d / "meta.json").string() + " is not a kiln checkpoint";
  const std::string bad_format = check_format_version(meta, (d / "meta.json").string(), kOldestWeightsVersion);
  if (!bad_format.empty()) return bad_format;
  // Without checksums there is nothing to verify: refuse rather than pass vacuously.
  if (!meta.contains("crc32") || !meta["crc32"].is_object() || !meta["crc32"].contains("model.safetensors"))
    return (d / "meta.json").string() + " has no crc32 checksums (at least model.safetensors'), so it cannot be verified";
  for (const auto& [name, crc] : meta["crc32"].items()) {
    if (!crc.is_number_unsigned()) return (d / "meta.json").string() + ": crc32 of " + name + " is not a number";
    const fs::path f = d / name;
    if (!fs::exists(f)) return f.string() + " is missing";
    if (crc32_file(f) != crc.get<uint32_t>()) return f.string() + " is corrupted (CRC-32 mismatch)";
  }
  return "";
}

std::string find_latest_checkpoint(const std::string& path) {
  fs::path p(path);
  if (!fs::exists(p)) throw Error("--resume " + path + ": no such directory");
  if (fs::is_directory(p)) {
    recover_checkpoint_dir(p.string());
    if (fs::exists(p / "ckpt")) recover_checkpoint_dir((p / "ckpt").string());
  }
  if (fs::exists(p / "meta.json") || fs::exists(p / "DONE")) {  // a step directory itself
    if (!fs::exists(p / "DONE")) throw Error(path + " has no DONE marker: the save was interrupted");
    std::string bad = verify_checkpoint(p.string());
    if (!bad.empty()) throw Error("checkpoint " + path + " is unusable: " + bad);
    return p.string();
  }
  if (!fs::exists(p / "DONE") && fs::exists(p / "ckpt") && complete_steps(p).empty()) p /= "ckpt";
  auto steps = complete_steps(p);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    std::string bad = verify_checkpoint(it->second.string());
    if (bad.empty()) return it->second.string();
    log::warn("[ckpt] skipping %s: %s", it->second.c_str(), bad.c_str());
  }
  throw Error("no complete checkpoint in " + p.string(),
              "a checkpoint is a step_NNNNNNNN directory with a DONE file; pass the checkpoint directory "
              "(checkpoint.dir, default runs/<name>/ckpt) or a run directory");
}

CheckpointRead load_checkpoint(const std::string& step_dir, int rank, int world, ReadScope scope,
                               const model::TensorFilter& keep_optim) {
  const fs::path d(step_dir);
  const bool rank_files = scope == ReadScope::WithRankFiles;
  CheckpointRead r;
  r.dir = step_dir;
  const std::string meta_path = (d / "meta.json").string();
  r.meta = read_json_file(meta_path);
  const std::string bad_format =
      check_format_version(r.meta, meta_path, rank_files ? kFormatVersion : kOldestWeightsVersion);
  if (!bad_format.empty())
    throw Error(bad_format, rank_files ? "resume it with the kiln that wrote it, or start a new run from its "
                                         "weights (init.from, with init.optimizer=false)"
                                       : "use a kiln that matches the checkpoint's format");
  r.step = json_get<int64_t>(r.meta, "step", meta_path);
  r.model = model::load_safetensors((d / "model.safetensors").string());
  if (rank_files) {
    // Any world size: the optimizer tensors are keyed by name and written once each (Note
    // [Optimizer state by name]), so every rank looks into all files and reads what it keeps:
    // under ZeRO-1 only its own share, so a node never holds ranks x the whole optimizer state.
    // The per-rank parts (cursor, sampling RNG) come from this rank's files, or rank 0's for a
    // rank the writing job did not have (its cursor is remapped by the caller; all ranks' agree).
    r.saved_world = json_get<int>(r.meta, "world_size", meta_path);
    if (r.saved_world < 1) throw Error(meta_path + ": world_size " + std::to_string(r.saved_world) + " is not a rank count");
    const int mine = rank < r.saved_world ? rank : 0;
    r.rank_state = read_json_file((d / rank_file("state", mine, "json")).string());
    for (int k = 0; k < r.saved_world; ++k) {
      const std::string f = (d / rank_file("optim", k, "safetensors")).string();
      std::error_code ec;
      r.optim_file_bytes += static_cast<int64_t>(fs::file_size(f, ec));
      const auto keep = [&](const std::string& key) {
        if (key.starts_with("rng.")) return k == rank;  // a rank's own RNG streams only
        return !keep_optim || keep_optim(key);
      };
      for (auto& [key, t] : model::load_safetensors(f, nullptr, keep, &r.optim_bytes_read)) {
        if (key.starts_with("rng.")) {
          r.rng[key] = t;
          continue;
        }
        if (!r.optim.emplace(key, t).second)
          throw Error(f + " holds optimizer tensor '" + key + "' that another rank's file holds too",
                      "the checkpoint is damaged or was not written by kiln (each tensor is written once)");
      }
    }
  }
  return r;
}

std::string check_format_version(const nlohmann::json& meta, const std::string& where, int oldest) {
  if (oldest <= 0) oldest = kFormatVersion;
  if (!meta.is_object() || !meta.contains("format_version") || !meta["format_version"].is_number_integer())
    return where + " has no format_version: an old kiln checkpoint this kiln cannot verify (re-save it with the "
                   "kiln that wrote it, or start a new run)";
  const int64_t v = meta["format_version"].get<int64_t>();
  if (v > kFormatVersion)
    return where + ": format_version " + std::to_string(v) + " is newer than this kiln reads (" +
           std::to_string(kFormatVersion) + "): update kiln";
  if (v < oldest)
    return where + ": format_version " + std::to_string(v) + " is older than this kiln reads (" +
           std::to_string(oldest) + (v < 2 ? "): its optimizer state is keyed by position, not by parameter name" : ")");
  return "";
}

void adopt_saved_numerics(const nlohmann::json& meta, const std::string& where) {
  const std::string kernel = meta.is_object() && meta.contains("rms_norm") && meta["rms_norm"].is_string()
                                 ? meta["rms_norm"].get<std::string>()
                                 : (meta.is_object() && meta.contains("rms_norm") ? "?" : "aten");
  if (kernel != "fused" && kernel != "aten")
    throw Error(where + ": rms_norm = " + meta["rms_norm"].dump() + " is not a kernel this kiln knows (fused, aten)",
                "the checkpoint's meta.json is damaged or was written by a newer kiln");
  model::set_fused_rms_norm(kernel == "fused");
}

void recover_checkpoint_dir(const std::string& dir) {
  static const std::regex re("\\.(step_[0-9]{8})\\.(old|prune|tmp)");
  std::error_code ec;
  std::vector<fs::path> leftovers;
  for (const auto& e : fs::directory_iterator(dir, ec)) leftovers.push_back(e.path());
  for (const auto& path : leftovers) {
    std::smatch m;
    const std::string name = path.filename().string();
    if (!std::regex_match(name, m, re) || m[2] == "tmp") continue;
    if (m[2] == "prune") {  // a crash while pruning: finish the delete
      kiln::remove_tree(path);
      continue;
    }
    // A crash between the two renames of a re-save: keep the new one if it is complete.
    const fs::path root(dir), final_dir = root / m[1].str(), tmp = root / ("." + m[1].str() + ".tmp");
    if (fs::exists(final_dir)) {
      kiln::remove_tree(path);
    } else if (fs::exists(tmp / "DONE") && verify_checkpoint(tmp.string()).empty()) {
      fs::rename(tmp, final_dir);
      kiln::remove_tree(path);
      log::warn("[ckpt] recovered %s from an interrupted save (the new copy was complete)", final_dir.c_str());
    } else {
      fs::rename(path, final_dir);
      log::warn("[ckpt] recovered %s from an interrupted save (restored the previous copy)", final_dir.c_str());
    }
    fsync_path(root);
  }
  // Whatever temp directories are left belong to saves that never finished: nothing reads them.
  for (const auto& path : leftovers) {
    std::smatch m;
    const std::string name = path.filename().string();
    if (std::regex_match(name, m, re) && m[2] == "tmp" && fs::exists(path)) kiln::remove_tree(path);
  }
}

std::string set_aside_newer_steps(const std::string& dir, int64_t step) {
  std::vector<fs::path> newer;
  for (const auto& [s, path] : step_dirs(dir))
    if (s > step) newer.push_back(path);
  if (newer.empty()) return "";
  fs::path branch;
  for (int k = 1;; ++k) {
    branch = fs::path(dir) / ("abandoned_after_" + step_name(step) + (k > 1 ? "_" + std::to_string(k) : ""));
    if (!fs::exists(branch)) break;
  }
  fs::create_directories(branch);
  for (const auto& p : newer) fs::rename(p, branch / p.filename());
  fsync_path(dir);
  return branch.string();
}

}  // namespace kiln::ckpt
