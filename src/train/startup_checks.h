// Checks a training stage runs once at start, before any step: that every rank sees the same
// checkpoint directory (checkpoints need a shared filesystem), that every rank resolved the same
// config and tokenizer, and that a resume does not change the device type.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace kiln::train {

// Collective (no-op in a world of 1): rank 0 writes a token file into `dir`, every other rank
// reads it back after a barrier; throws kiln::Error on every rank, naming the ranks and hosts that
// cannot see it, when checkpoint.dir is node-local.
void check_shared_checkpoint_dir(const std::string& dir);

// Collective: all-gathers a hash of the resolved config (YAML) and of the tokenizer; throws on
// every rank naming the ranks and hosts that differ from rank 0 and what differs: the config
// keys with both values, or the tokenizer file's two SHA-256s.
void check_ranks_agree(const std::string& config_yaml, const std::string& tokenizer_sha256,
                       const std::string& tokenizer_path);

// On resume: `device_type` ("cpu"/"cuda") must be the one the checkpoint was trained on (meta
// "device"; for older checkpoints the saved run.device when it is explicit). CPU and CUDA runs
// differ in math (bf16 autocast, bf16 Newton-Schulz), so a change would silently fork the run.
void check_resume_device(const nlohmann::json& meta, const std::string& saved_run_device, const std::string& device_type,
                         const std::string& ckpt_dir);

// On resume at another world size (ZeRO-1 issue): train.total_batch_size cannot change on resume,
// so `world` must split it into world x device_batch_size x seq_len x accumulation steps. Throws
// naming the rank counts that can (and the checkpoint's own). No-op for the same world size.
void check_resume_world(int saved_world, int world, int64_t total_batch_size, int64_t device_batch_size,
                        int64_t seq_len, const std::string& ckpt_dir);

}  // namespace kiln::train
