// See report_lineage.h.
#include "eval/report_lineage.h"

#include <filesystem>

#include "core/error.h"
#include "core/json_file.h"
#include "core/sha256.h"

namespace kiln::eval {
namespace fs = std::filesystem;

std::string training_cwd(const std::string& step_dir, const Config& cfg) {
  const fs::path rel = fs::path(cfg.checkpoint.dir).lexically_normal();
  std::error_code ec;
  fs::path at = fs::weakly_canonical(fs::absolute(step_dir, ec), ec).parent_path();  // the checkpoint dir
  if (ec || rel.empty() || rel.is_absolute()) return "";
  std::vector<fs::path> parts(rel.begin(), rel.end());
  while (!parts.empty() && parts.back().empty()) parts.pop_back();  // "runs/x/ckpt/" ends in ""
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (*it == "." ) continue;
    if (*it == ".." || at.filename() != *it) return "";
    at = at.parent_path();
  }
  return at.string();
}

std::vector<std::string> recorded_path_candidates(const std::string& recorded, const std::string& train_cwd) {
  if (recorded.empty()) return {};
  if (fs::path(recorded).is_absolute()) return {recorded};
  std::vector<std::string> out;
  if (!train_cwd.empty()) out.push_back((fs::path(train_cwd) / recorded).lexically_normal().string());
  out.push_back(recorded);
  return out;
}

ParentLookup find_parent(const nlohmann::json& lineage, const std::string& child_step_dir, const std::string& train_cwd) {
  ParentLookup r;
  if (!lineage.is_object() || !lineage.contains("parent") || !lineage["parent"].is_string()) return r;
  const std::string recorded = lineage["parent"].get<std::string>();
  const std::string want = lineage.value("meta_sha256", std::string());
  const std::string child_meta = child_step_dir + "/meta.json";
  std::string mismatched;
  for (const auto& dir : recorded_path_candidates(recorded, train_cwd)) {
    const std::string meta = dir + "/meta.json";
    if (!fs::is_regular_file(meta)) continue;
    const std::string got = sha256_hex(read_text_file(meta));
    if (!want.empty() && got == want) {
      r.step_dir = dir;
      return r;
    }
    if (want.empty()) {
      mismatched = meta + " cannot be verified: " + child_meta + " records no lineage.meta_sha256";
    } else if (mismatched.empty()) {
      mismatched = meta + " has sha256 " + got.substr(0, 16) + "..., but " + child_meta + " records the parent's as " +
                   want.substr(0, 16) + "...";
    }
  }
  if (!mismatched.empty())
    throw Error("[report] lineage check failed: " + mismatched +
                    ". The parent checkpoint was replaced or edited after this stage started from it, so its "
                    "results would be reported as this model's history",
                "restore the parent checkpoint the stage was trained from (lineage.parent = \"" + recorded +
                    "\" in " + child_meta + "), or report the stages apart with ./eval --task report --ckpt <stage>");
  r.note = "parent stage not found: lineage.parent = \"" + recorded + "\" in " + child_meta + " (looked in " +
           [&] {
             std::string s;
             for (const auto& d : recorded_path_candidates(recorded, train_cwd)) s += (s.empty() ? "" : ", ") + d;
             return s;
           }() +
           "); earlier stages are left out";
  return r;
}

}  // namespace kiln::eval
