// Stages and lineage (issue 9): a later stage starts from a parent checkpoint (init.from), takes
// its model shape, must use its tokenizer, and records where it came from in meta.json; --resume
// refuses another stage's checkpoint and names the binary that wrote it.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "core/config.h"

namespace kiln::train {

struct Parent {
  std::string step_dir;      // the resolved complete step directory
  int64_t step = 0;
  nlohmann::json meta;       // its meta.json
  std::string meta_path;     // <step_dir>/meta.json
  std::string meta_sha256;   // of meta.json's bytes
};

// Resolves init.from (a checkpoint dir -> its newest complete step, a step dir, or a run dir).
// Call on one rank; throws kiln::Error naming the path.
std::string resolve_parent_dir(const std::string& from);
Parent read_parent(const std::string& step_dir);

// The model section comes from the parent: keys the config left unset are copied; a key the
// config set to a different value is refused naming both files. model.seq_len may differ (it is
// the stage's context, not a weight shape: rotary tables are rebuilt for it).
void adopt_parent_shape(Config& cfg, const Parent& p);

// Refuses a tokenizer whose hash differs from the parent's, naming both files.
void check_parent_tokenizer(const Parent& p, const std::string& tokenizer_path, const std::string& sha256);

// meta.json's "lineage": parent dir, step, sha256 of its meta.json, its stage and its own lineage.
nlohmann::json lineage_of(const Parent& p);

// The stage a checkpoint's meta.json records ("pretrain" when absent: written before stages).
std::string stage_of(const nlohmann::json& meta);
// --resume of a checkpoint of another stage: throws kiln::Error naming the binary to use.
void check_resume_stage(const nlohmann::json& meta, const std::string& ckpt_dir, const std::string& stage);

}  // namespace kiln::train
