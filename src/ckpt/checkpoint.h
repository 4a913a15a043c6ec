// Checkpoints (docs/architecture.md, "The files kiln writes"): <dir>/step_NNNNNNNN/ with model.safetensors (rank 0),
// optim_rank_RRRRR.safetensors and state_rank_RRRRR.json (every rank), tokenizer.json, meta.json
// (config, world size, metrics, CRC-32 of every file) and DONE, written last by rank 0 after a
// barrier. Everything goes to a temporary directory that is renamed at the end, so a crash at
// any instant leaves the previous checkpoint loadable.
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "model/safetensors.h"

namespace kiln::ckpt {

struct CheckpointWrite {
  int64_t step = 0;
  model::NamedTensors model;        // used on rank 0 only
  model::NamedTensors optim;        // this rank's share of the optimizer state
  model::NamedTensors rng;          // this rank's RNG states ("rng.*"; stored in its optim file)
  nlohmann::json rank_state;        // this rank's cursor, counters
  nlohmann::json meta;              // rank 0: config, metrics, ... (checksums and world are added)
  std::string tokenizer_path;       // copied in so the checkpoint is self-contained
};

// Collective: every rank calls it. Returns the final step directory. Prunes to keep_last (0: all).
std::string save_checkpoint(const std::string& dir, const CheckpointWrite& w, int64_t keep_last);

// The newest complete checkpoint for `path`: a step directory, a checkpoint directory holding
// step_* directories, or a run directory holding ckpt/. Directories without DONE are skipped;
// one whose files fail their checksum is skipped with a warning naming the file. Throws
// kiln::Error when none is usable.
std::string find_latest_checkpoint(const std::string& path);

// The newest step directory with DONE under a checkpoint directory, or "" (no checksum check).
std::string newest_complete_step(const std::string& dir);

// Check every file of a step directory against meta.json; returns "" or what is wrong.
std::string verify_checkpoint(const std::string& step_dir);

// "" when meta.json's format_version is one this kiln reads (oldest..current; oldest <= 0: the
// current one only), else what is wrong (a missing, older or newer version), naming `where`.
std::string check_format_version(const nlohmann::json& meta, const std::string& where, int oldest = 0);

// The numerics a checkpoint's run used, taken on by this process before its model runs, so that a
// resume or a sample continues with the same bits: meta "rms_norm" is "fused" or "aten" (the CPU
// RMSNorm kernel, model/fused_ops.h); a checkpoint without it predates the fused kernel: "aten".
// save_checkpoint records the kernel in use. Throws kiln::Error on another value.
void adopt_saved_numerics(const nlohmann::json& meta, const std::string& where);

// Rank 0, before listing or saving: repair what a crash inside save_checkpoint left behind: a
// .step_N.old from between the two renames (the complete new copy wins, else the old one comes
// back), .step_N.prune directories from an interrupted prune and .step_N.tmp of unfinished saves
// (deleted).
void recover_checkpoint_dir(const std::string& dir);

// Resuming step `step` while newer step directories exist forks the timeline: move the newer
// ones into <dir>/abandoned_after_step_NNNNNNNN[_k]/ so that saves, keep_last pruning and a later
// --resume DIR never mix them with the resumed run. Returns that directory, or "" if none moved.
std::string set_aside_newer_steps(const std::string& dir, int64_t step);

struct CheckpointRead {
  std::string dir;
  int64_t step = 0;
  nlohmann::json meta;
  nlohmann::json rank_state;
  std::map<std::string, torch::Tensor> model;
  std::map<std::string, torch::Tensor> optim;  // the optimizer tensors asked for, from every rank's file
  std::map<std::string, torch::Tensor> rng;    // this rank's RNG states ("rng.*"), when it wrote them
  int saved_world = 0;                          // ranks that wrote it (with rank files)
  int64_t optim_bytes_read = 0;                 // tensor bytes read from the optim_rank_* files
  int64_t optim_file_bytes = 0;                 // the size of those files together
};

// What load_checkpoint reads: the weights (and meta) only, for sample, eval, chat and a weights-only
// init.from; or also the rank files (optimizer state, cursor, RNG), to resume or warm-start.
enum class ReadScope { Weights, WithRankFiles };

// Reads what `rank` needs. With rank files, any world size: optim merges every rank's optimizer
// file (each tensor is in one), keeping only the tensors `keep_optim` accepts (empty: all), which
// are the only ones read from disk (ZeRO-1: a rank reads its own share, by name, from each file's
// header index); rank_state is this rank's, or rank 0's when the writing job had fewer ranks.
CheckpointRead load_checkpoint(const std::string& step_dir, int rank, int world,
                               ReadScope scope = ReadScope::WithRankFiles,
                               const model::TensorFilter& keep_optim = nullptr);

}  // namespace kiln::ckpt
