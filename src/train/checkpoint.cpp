// Checkpoint save / find / verify / load; see checkpoint.h. Rank 0 owns the directory dance
// (temp dir -> files -> checksums -> meta.json -> DONE -> rename); other ranks only write their
// own files between two barriers.
#include "train/checkpoint.h"

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
#include "core/json_file.h"
#include "core/log.h"
#include "dist/dist.h"

namespace fs = std::filesystem;

namespace kiln::train {
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

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error("cannot read " + p.string());
  return std::string(std::istreambuf_iterator<char>(in), {});
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

std::vector<std::pair<int64_t, fs::path>> complete_steps(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  static const std::regex re("step_([0-9]{8})");
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (e.is_directory() && std::regex_match(name, m, re)) {
      if (fs::exists(e.path() / "DONE")) out.emplace_back(std::stoll(m[1].str()), e.path());
      else log::warn("[ckpt] skipping %s: no DONE marker (an interrupted save)", e.path().c_str());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string save_checkpoint(const std::string& dir, const CheckpointWrite& w, int64_t keep_last) {
  const auto& dc = dist::ctx();
  const fs::path root(dir), final_dir = root / step_name(w.step), tmp = root / ("." + step_name(w.step) + ".tmp");
  if (dc.rank == 0) {
    fs::create_directories(root);
    fs::remove_all(tmp);  // leftovers of a save that crashed
    fs::create_directories(tmp);
  }
  dist::barrier();
  model::save_safetensors((tmp / rank_file("optim", dc.rank, "safetensors")).string(), w.optim);
  fsync_path(tmp / rank_file("optim", dc.rank, "safetensors"));
  write_text(tmp / rank_file("state", dc.rank, "json"), w.rank_state.dump(2) + "\n");
  if (dc.rank == 0) {
    model::save_safetensors((tmp / "model.safetensors").string(), w.model, {{"format", "kiln.model"}});
    fsync_path(tmp / "model.safetensors");
    if (!w.tokenizer_path.empty()) {
      fs::copy_file(w.tokenizer_path, tmp / "tokenizer.json", fs::copy_options::overwrite_existing);
      fsync_path(tmp / "tokenizer.json");
    }
  }
  dist::barrier();  // every rank's files are on disk
  if (dc.rank == 0) {
    nlohmann::json meta = w.meta;
    meta["format"] = "kiln.checkpoint";
    meta["format_version"] = 1;
    meta["step"] = w.step;
    meta["world_size"] = dc.world;
    nlohmann::json sums = nlohmann::json::object();
    for (const auto& e : fs::directory_iterator(tmp))
      sums[e.path().filename().string()] = crc32_file(e.path());
    meta["crc32"] = sums;
    write_text(tmp / "meta.json", meta.dump(2) + "\n");
    write_text(tmp / "DONE", "");
    fsync_path(tmp);
    // A checkpoint of the same step (saved again after a resume) is replaced only now.
    const fs::path old = root / ("." + step_name(w.step) + ".old");
    if (fs::exists(final_dir)) fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fsync_path(root);
    fs::remove_all(old);
    if (keep_last > 0) {
      auto steps = complete_steps(root);
      for (size_t i = 0; i + static_cast<size_t>(keep_last) < steps.size(); ++i) fs::remove_all(steps[i].second);
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
    meta = nlohmann::json::parse(read_text(d / "meta.json"));
  } catch (const std::exception& e) {
    return (d / "meta.json").string() + " is unreadable (" + e.what() + ")";
  }
  if (!meta.is_object() || meta.value("format", "") != "kiln.checkpoint" || !meta["crc32"].is_object()) return (d / "meta.json").string() + " is not a kiln checkpoint with checksums (crc32)";
  for (const auto& [name, crc] : meta["crc32"].items()) {
    const fs::path f = d / name;
    if (!fs::exists(f)) return f.string() + " is missing";
    if (!crc.is_number_unsigned() || crc32_file(f) != crc.get<uint32_t>()) return f.string() + " is corrupted (CRC-32 mismatch)";
  }
  return "";
}

std::string find_latest_checkpoint(const std::string& path) {
  fs::path p(path);
  if (!fs::exists(p)) throw Error("--resume " + path + ": no such directory");
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

CheckpointRead load_checkpoint(const std::string& step_dir, int rank, int world, bool load_rank_files) {
  const fs::path d(step_dir);
  CheckpointRead r;
  r.dir = step_dir;
  const std::string meta_path = (d / "meta.json").string();
  r.meta = read_json_file(meta_path);
  r.step = json_get<int64_t>(r.meta, "step", meta_path);
  r.model = model::load_safetensors((d / "model.safetensors").string());
  if (load_rank_files) {
    const int saved = json_get<int>(r.meta, "world_size", meta_path);
    if (saved != world)
      throw Error("checkpoint " + step_dir + " was written by " + std::to_string(saved) + " ranks; this job has " +
                      std::to_string(world),
                  "resume with the same number of processes (mpirun -np " + std::to_string(saved) +
                      "), or start a new run initialised from these weights");
    r.rank_state = read_json_file((d / rank_file("state", rank, "json")).string());
    r.optim = model::load_safetensors((d / rank_file("optim", rank, "safetensors")).string());
  }
  return r;
}

}  // namespace kiln::train
