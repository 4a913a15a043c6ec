// The run config: YAML -> typed structs, once, at start (README, "Configs"). After loading, no
// code looks a key up by string. Every key lives in one table (config.cpp) that also drives
// validation, `--help-config`, the printed config and the YAML dump, so they cannot drift.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

struct RunConfig {
  std::string name;          // "" -> the config file's stem
  std::string dir;           // "" -> runs/<name>
  int64_t seed = 42;
  std::string device = "auto";  // auto | cpu | cuda
  bool operator==(const RunConfig&) const = default;
};

struct ModelConfig {
  std::string arch = "nanochat";  // nanochat | nanochat2 | gpt2 (model::make_model builds it)
  std::string size;          // gpt2: gpt2 | gpt2-medium | gpt2-large | gpt2-xl sets depth/width/n_head
  int64_t depth = 20;        // the one dial: width 64*depth, heads ceil(width/128) (gpt2: width/64)
  int64_t width = 0;         // 0 -> 64*depth
  int64_t n_head = 0;        // 0 -> ceil(width/128)
  int64_t n_kv_head = 0;     // 0 -> n_head (GQA when smaller)
  int64_t seq_len = 2048;
  int64_t vocab_size = 0;    // 0 -> from the tokenizer
  double softcap = 15.0;
  double rope_base = 10000.0;
  double norm_eps = 0.0;     // RMSNorm epsilon; 0 -> the activations' dtype epsilon (nanochat's F.rms_norm)
  int64_t n_ctx = 0;         // gpt2: learned positions (0 -> 1024); seq_len <= n_ctx
  double dropout = 0.0;      // gpt2: embedding/attention/residual dropout while training
  // arch nanochat2 (nanochat's current model, issue 22): the sliding-window pattern tiled over the
  // layers (S short, L full; the last layer is always L) and the short window in tokens (0: nanochat's
  // rule, ceil(seq_len/4/128)*128).
  std::string window_pattern = "SSSL";
  int64_t short_window = 0;
  bool operator==(const ModelConfig&) const = default;
};

// One data source: a shard directory or glob, listed `repeat` times in a task mixture
// (nanochat's TaskMixture: a task listed twice is oversampled twice).
struct DataSource {
  std::string path;
  int64_t repeat = 1;
  bool operator==(const DataSource&) const = default;
};
using DataSources = std::vector<DataSource>;
// "a" or "a, b x2" for messages and reports.
std::string describe_sources(const DataSources& s);

struct DataConfig {
  std::string tokenizer;     // tokenizer JSON
  DataSources train;         // a shard directory or glob, or a list of {path, repeat}
  DataSources val;
  std::string layout = "auto";        // auto (pretrain/midtrain: packed, sft: padded) | packed | padded
  std::string train_on = "assistant"; // chat shards: assistant (masked loss) | all (every token)
  bool operator==(const DataConfig&) const = default;
};

// Where a later stage starts from (midtrain from base, SFT from mid): weights only, or weights
// and optimizer state (nanochat HEAD's warm start).
struct InitConfig {
  std::string from;          // "" = fresh init; a checkpoint dir, a step dir or a run dir
  bool optimizer = false;    // also load the parent's optimizer state
  bool operator==(const InitConfig&) const = default;
};

struct TrainConfig {
  int64_t max_steps = -1;    // -1 -> epochs over the data if epochs > 0, else target_param_data_ratio
  double epochs = 0;         // chat stages: passes over data.train (0: unused)
  double target_param_data_ratio = 20.0;
  int64_t device_batch_size = 32;
  int64_t total_batch_size = 524288;  // tokens per optimizer step, all ranks
  double grad_clip = 1.0;             // 0 disables
  std::string dtype = "auto";         // auto (bf16 autocast on CUDA, fp32 on CPU) | float32 | bfloat16
  bool skip_nonfinite = false;        // NaN/Inf loss or gradients: false stops the run, true skips the step
  bool fp8 = false;                   // FP8 matmuls while training (model/fp8.h); CUDA sm_89+ only
  bool operator==(const TrainConfig&) const = default;
};

struct OptimConfig {
  std::string recipe = "nanochat";  // nanochat (Muon + AdamW) | adamw (GPT-2 / nanoGPT: AdamW only)
  double lr = 6e-4;                 // recipe adamw: the one learning rate
  double matrix_lr = 0.02;
  double embedding_lr = 0.2;
  double unembedding_lr = 0.004;
  double weight_decay = 0.0;
  double adam_beta1 = 0.8;
  double adam_beta2 = 0.95;
  double adam_eps = 1e-10;
  double muon_momentum_start = 0.85;
  double muon_momentum_end = 0.95;
  int64_t muon_momentum_warmup = 300;
  int64_t ns_steps = 5;
  double warmup_ratio = 0.0;
  double warmdown_ratio = 0.2;
  double final_lr_frac = 0.0;
  double init_lr_frac = 1.0;  // every LR times this (nanochat SFT: 0.02)
  // ---- nanochat's current recipe (optim.recipe muon_adamw, issue 22); defaults keep V1's math ----
  double scalar_lr = 0.5;                    // AdamW lr of the x0 lambdas (resid lambdas: x0.01)
  double muon_beta2 = 0.9;                   // NorMuon second-moment decay
  int64_t warmup_steps = -1;                 // LR warmup in steps (-1: warmup_ratio)
  double muon_momentum_final = -1;           // momentum at the last step, linear over the warmdown (-1: none)
  std::string weight_decay_schedule = "constant";  // constant | cosine (to 0 at the last step)
  double batch_lr_scale = 1.0;               // every LR times this (-1: sqrt(B / 2^19), resolved at start)
  double weight_decay_scale = 1.0;           // weight_decay times this (-1: sqrt(B / 2^19) * D_ref / D)
  bool operator==(const OptimConfig&) const = default;
};

struct CheckpointConfig {
  std::string dir;           // "" -> <run.dir>/ckpt
  int64_t every = 0;         // 0 -> only at the end
  int64_t keep_last = 3;     // 0 -> keep all
  bool operator==(const CheckpointConfig&) const = default;
};

struct EvalConfig {
  int64_t every = 250;       // val bits-per-byte every k steps; 0 disables
  int64_t tokens = 10485760; // val tokens per evaluation
  int64_t sample_every = 2000;
  int64_t sample_tokens = 64;
  // CORE during training (nanochat's base_train core_metric_every / core_metric_max_per_task):
  int64_t core_every = 0;          // 0 disables; else every k steps and at the last step
  int64_t core_max_per_task = 500; // the first N of each task's shuffled items (-1: all)
  std::string core_bundle;         // the DCLM eval bundle (data_tools/fetch.sh core DIR)
  bool operator==(const EvalConfig&) const = default;
};

struct DistConfig {
  std::string backend = "auto";  // auto (nccl on CUDA, mpi on CPU) | nccl | mpi
  double bucket_mb = 25.0;
  bool zero1 = false;
  double timeout_s = 600.0;      // a collective that takes longer aborts the job
  bool operator==(const DistConfig&) const = default;
};

struct LogConfig {
  int64_t every = 1;             // console progress line every k steps
  bool tensorboard = false;      // also TensorBoard event files under <run.dir>/tb/
  bool operator==(const LogConfig&) const = default;
};

// ---- ./rl (issue 25): nanochat's simplified GRPO on GSM8K (scripts/chat_rl.py) ----
struct RlConfig {
  std::string train;               // GSM8K JSONL the questions come from (train split)
  std::string val;                 // held-out GSM8K JSONL for pass@k ("": no pass@k)
  int64_t examples_per_step = 16;  // questions per optimizer step, all ranks (strided over ranks)
  int64_t num_samples = 16;        // completions per question (a multiple of train.device_batch_size)
  int64_t max_new_tokens = 256;
  double temperature = 1.0;
  int64_t top_k = 50;              // 0: all tokens
  std::string reward = "gsm8k";    // gsm8k (./eval's answer rule) | format (any "#### <number>" answer)
  int64_t eval_examples = 400;     // pass@k on the first N held-out questions
  int64_t eval_samples = 0;        // k of pass@k (0: train.device_batch_size, as nanochat)
  bool operator==(const RlConfig&) const = default;
};
// ---- end ./rl ----

struct Config {
  RunConfig run;
  InitConfig init;
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  OptimConfig optim;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  DistConfig dist;
  LogConfig log;
  RlConfig rl;  // ./rl only
  // Where the config came from, for error messages; not part of the config's identity.
  std::string source;
  // Keys the file or the overrides set explicitly ("model.depth", ...); not part of the identity.
  std::vector<std::string> given;
  bool operator==(const Config& o) const {
    return run == o.run && init == o.init && model == o.model && data == o.data && train == o.train &&
           optim == o.optim && checkpoint == o.checkpoint && eval == o.eval && dist == o.dist &&
           log == o.log && rl == o.rl;
  }
};

// Load a YAML file, apply "section.key=value" overrides, fill derived defaults and validate
// everything that does not depend on the world size. Throws kiln::Error naming file and key.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from YAML text; `source` names it in error messages.
Config load_config_text(const std::string& yaml, const std::string& source,
                        const std::vector<std::string>& overrides = {});
// Apply further overrides to a loaded config (used by --resume).
void apply_overrides(Config& cfg, const std::vector<std::string>& overrides);

// Checks that need the world size: total_batch_size = world * device_batch_size * seq_len * k.
void validate_for_world(const Config& cfg, int world);
// Gradient-accumulation steps per optimizer step for this world size.
int64_t grad_accum_steps(const Config& cfg, int world);

// Serialise the resolved config; load_config_text(to_yaml(c)) == c.
std::string to_yaml(const Config& cfg);
// Every key with its type, default and help, one per line (for --help-config).
std::string describe_keys();
// The key paths of the table, in order ("run.name", ...).
std::vector<std::string> config_keys();

// Transformer shape derived from model.depth (or explicit sizes), with the rule that made it.
struct ModelShape {
  int64_t n_layer = 0, width = 0, n_head = 0, n_kv_head = 0, head_dim = 0;
  std::string rule;  // e.g. "width = 64*depth = 1280; heads = ceil(1280/128) = 10"
};
ModelShape derive_shape(const ModelConfig& m);

}  // namespace kiln
