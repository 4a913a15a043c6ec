// How the report card finds a checkpoint's parent stages (meta.json "lineage") without trusting
// the working directory or the recorded path alone. Paths in meta.json (lineage.parent, run.dir)
// were written relative to the directory training ran in; that directory is recovered from the
// checkpoint's own location (its step dir sits at <that dir>/<checkpoint.dir>/step_N), so a
// report run from anywhere, or on a tree moved as a whole, finds the same files. A parent is
// accepted only when the sha256 of its meta.json is the one the child recorded.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/config.h"

namespace kiln::eval {

// The directory the run that wrote `step_dir` ran in, from its config's checkpoint.dir; "" when
// it cannot be told (an absolute checkpoint.dir, one with "..", or a moved checkpoint dir).
std::string training_cwd(const std::string& step_dir, const Config& cfg);

// Where a path recorded by that run may be now, most likely first: absolute as recorded, else
// under training_cwd, then as recorded (relative to this process's directory).
std::vector<std::string> recorded_path_candidates(const std::string& recorded, const std::string& train_cwd);

struct ParentLookup {
  std::string step_dir;  // the verified parent step dir ("" when none)
  std::string note;      // when not found: what was looked for, for the report
};

// The parent named by `lineage` (meta.json's "lineage" of the checkpoint at child_step_dir):
// the first candidate whose meta.json hashes to lineage.meta_sha256. Throws kiln::Error naming
// the files when a candidate exists but none matches (a replaced or edited parent); returns a
// note when no candidate exists (a deleted parent) or the lineage records no parent.
ParentLookup find_parent(const nlohmann::json& lineage, const std::string& child_step_dir, const std::string& train_cwd);

}  // namespace kiln::eval
