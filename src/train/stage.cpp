// Command line and start-up of a training stage, in named steps: parse the command -> dist::init ->
// resolve the start point (fresh, --resume or init.from; on --resume the overrides are policed)
// -> prepare the checkpoint directory -> assemble the Trainer's parts (device, tokenizer, loaders,
// run length, model, communicator) -> run (restore or init_from, then Trainer::run()).
#include "train/stage.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <fstream>
#include <thread>
#include <string>
#include <vector>

#include "core/config.h"  // load_config, to_yaml, derive_shape, grad_accum_steps
#include "core/error.h"      // Error
#include "core/format.h"     // per_rank_mb
#include "core/json_file.h"  // read_json_file, json_get
#include "core/log.h"     // log::info
#include "dist/comm.h"     // make_comm, pick_device
#include "dist/dist.h"     // dist::init, ctx, rank0_then_broadcast
#include "dist/signals.h"  // install_stop_handlers
#include "model/lm.h"      // make_model
#include "ckpt/checkpoint.h"  // find_latest_checkpoint, load_checkpoint, set_aside_newer_steps
#include "train/startup_checks.h"  // check_shared_checkpoint_dir, check_ranks_agree, check_resume_device, check_resume_world
#include "train/core_metric.h"  // load_training_core_bundle
#include "train/lineage.h"     // Parent, adopt_parent_shape, check_resume_stage, lineage_of
#include "train/rl_source.h"  // make_rl_stage, resolve_rl_batch
#include "train/run_length.h"  // decide_run_steps
#include "train/scaling.h"     // resolve_scaling, reference_scaling_params
#include "train/stage_data.h"  // make_stage_loaders, chat_sample_prompts
#include "train/trainer.h"     // Trainer

namespace kiln::train {
namespace {

const char* stage_name(Stage s) {
  switch (s) {
    case Stage::Pretrain: return "pretrain";
    case Stage::Midtrain: return "midtrain";
    case Stage::Sft: return "sft";
    case Stage::Rl: return "rl";
  }
  return "?";
}

const char* stage_blurb(Stage s) {
  switch (s) {
    case Stage::Pretrain: return "Pretrain a GPT on token shards (data.train) from a YAML config.";
    case Stage::Midtrain: return "Midtrain a base checkpoint on packed conversations.";
    case Stage::Sft: return "Supervised fine-tuning on padded conversations with a masked loss.";
    case Stage::Rl:
      return "Reinforcement learning on GSM8K from a chat model (nanochat's simplified GRPO: on-policy samples, "
             "reward r - mean(r) per question, token-level loss, no KL, no clipping).";
  }
  return "";
}

// Keys that a resumed run may change: where outputs go and how often, never the math of the run.
bool resume_override_allowed(const std::string& key) {
  for (const char* prefix : {"checkpoint.", "eval.", "log.", "dist.timeout_s", "dist.backend", "dist.zero1", "run.device",
                             "train.skip_nonfinite",
                             "run.dir", "run.name"})
    if (key.rfind(prefix, 0) == 0) return true;
  return false;
}

// What the command line asked for.
struct Command {
  std::string name;  // the binary: pretrain | midtrain | sft
  std::string config_path;  // "" with --resume
  std::vector<std::string> overrides;
  std::string resume;  // --resume DIR; "" for a fresh run
  bool check_only = false;
};

// Where the run starts: a config file (fresh, with a parent when init.from is set) or a checkpoint.
struct StartPoint {
  Config cfg;
  std::string resume_dir;        // the step directory resumed ("": a fresh run)
  nlohmann::json resume_meta;    // its meta.json
  std::string saved_device;      // run.device of the resumed run
  std::optional<Parent> parent;  // init.from of a fresh run
  bool resuming() const { return !resume_dir.empty(); }
};

// Parses flags into `cmd`; returns an exit code when the command is already answered (--help,
// --help-config, a parse error).
std::optional<int> parse_command(Stage stage, int argc, char** argv, Command& cmd) {
  const std::string name = cmd.name = stage_name(stage);
  CLI::App app{std::string(stage_blurb(stage)) +
                   "\n\nUsage:\n  ./" + name + " CONFIG.yaml [section.key=value ...]\n  ./" + name +
                   " --resume DIR [section.key=value ...]\n  mpirun -np N ./" + name + " CONFIG.yaml",
               name};
  std::vector<std::string> args;
  bool print_keys = false;
  app.add_option("args", args, "CONFIG.yaml followed by section.key=value overrides");
  app.add_option("--resume", cmd.resume,
                 "continue from the newest complete checkpoint in DIR (a checkpoint dir, a step dir or a run "
                 "dir); the config comes from the checkpoint");
  app.add_flag("--check", cmd.check_only, "validate the config and the MPI setup, print them, and exit");
  app.add_flag("--help-config", print_keys, "list every config key with its type, default and meaning");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (print_keys) {
    printf("Config keys (YAML sections; override any with section.key=value):\n%s", describe_keys().c_str());
    return 0;
  }
  // CONFIG is the first argument without '='; the rest are overrides.
  const std::string& resume = cmd.resume;
  for (const auto& a : args) {
    if (!resume.empty() && a.find('=') == std::string::npos)
      throw Error("./" + name + " " + a + " --resume " + resume + ": --resume takes the config from the checkpoint, so " +
                      a + " would be ignored",
                  "continue the run with ./" + name + " --resume " + resume + " [section.key=value ...], or start a "
                  "new run from " + a + " without --resume");
    if (cmd.config_path.empty() && a.find('=') == std::string::npos && resume.empty()) cmd.config_path = a;
    else cmd.overrides.push_back(a);
  }
  if (cmd.config_path.empty() && resume.empty())
    throw Error("no config given", "run ./" + name + " CONFIG.yaml (e.g. configs/tiny.yaml) or ./" + name +
                                       " --resume DIR; see ./" + name + " --help");
  return std::nullopt;
}

// On --resume: an override that restates the checkpoint's value is fine (a requeued Slurm job
// repeats its command line, overrides included); one that changes the math of the run is refused.
void police_resume_overrides(const Config& saved_cfg, const std::vector<std::string>& overrides) {
  const std::string saved = to_yaml(saved_cfg);
  for (const auto& o : overrides) {
    const std::string key = o.substr(0, o.find('='));
    if (resume_override_allowed(key)) continue;
    Config probe = saved_cfg;
    apply_overrides(probe, {o});
    if (to_yaml(probe) != saved)
      throw Error("--resume: the override '" + o + "' would change the math of the run being resumed",
                  "on resume only checkpoint.*, eval.*, log.*, run.dir, run.name, run.device (same device type), "
                  "train.skip_nonfinite, dist.timeout_s, dist.backend and dist.zero1 may change; start a new run to change "
                  "anything else");
  }
}

// ./rl starts from a chat model: init.from set, and not a base (pretrain) checkpoint.
void check_rl_parent(const StartPoint& sp) {
  if (!sp.parent)
    throw Error(sp.cfg.source + ": init.from is not set: ./rl improves a chat model and does not start from random weights",
                "set init.from to an ./sft checkpoint (e.g. runs/sft/ckpt)");
  const std::string stage = stage_of(sp.parent->meta);
  if (stage == "pretrain")
    throw Error(sp.cfg.source + ": init.from = " + sp.cfg.init.from + " is a base model (" + sp.parent->step_dir +
                    "/meta.json has stage: pretrain), not a chat model",
                "run ./midtrain and ./sft first and set init.from to the ./sft checkpoint");
}

// Fresh (the config file, and the parent's shape when init.from is set) or --resume (the
// checkpoint's config, with policed overrides, on any world size that keeps the batch). ./rl derives its batch here.
StartPoint resolve_start(Stage stage, const Command& cmd, const dist::Context& dc) {
  StartPoint sp;
  if (cmd.resume.empty()) {
    sp.cfg = load_config(cmd.config_path, cmd.overrides);
    if (!sp.cfg.init.from.empty()) {  // a later stage: the parent's shape, checked against the config
      const std::string from = sp.cfg.init.from;
      sp.parent = read_parent(dist::rank0_then_broadcast([&] { return resolve_parent_dir(from); }));
      adopt_parent_shape(sp.cfg, *sp.parent);
    }
    if (stage == Stage::Rl) {
      check_rl_parent(sp);
      resolve_rl_batch(sp.cfg);
    }
    return sp;
  }
  // Rank 0 finds and verifies the checkpoint once; every rank then loads the same one.
  const std::string resume = cmd.resume;
  sp.resume_dir = dist::rank0_then_broadcast([&] { return ckpt::find_latest_checkpoint(resume); });
  const std::string meta_path = sp.resume_dir + "/meta.json";
  sp.resume_meta = read_json_file(meta_path);
  check_resume_stage(sp.resume_meta, sp.resume_dir, cmd.name);  // ./midtrain --resume runs/sft/ckpt names ./sft
  sp.cfg = load_config_text(json_get<std::string>(sp.resume_meta, "config", meta_path), meta_path);
  ckpt::adopt_saved_numerics(sp.resume_meta, meta_path);  // the kernels the run started with
  sp.saved_device = sp.cfg.run.device;
  police_resume_overrides(sp.cfg, cmd.overrides);
  apply_overrides(sp.cfg, cmd.overrides);
  // Another world size is fine (the checkpoint is world-independent) if the batch can be kept.
  check_resume_world(json_get<int>(sp.resume_meta, "world_size", meta_path), dc.world, sp.cfg.train.total_batch_size,
                     sp.cfg.train.device_batch_size, sp.cfg.model.seq_len, sp.resume_dir);
  return sp;
}

void log_run(const Config& cfg, const dist::Context& dc) {
  const ModelShape shape = derive_shape(cfg.model);
  log::info("[config] %s (resolved):\n%s", cfg.source.c_str(), to_yaml(cfg).c_str());
  log::info("[model] depth %lld: %s", (long long)shape.n_layer, shape.rule.c_str());
  log::info("[dist] world %d (%d on this node, host %s)", dc.world, dc.local_world, dc.host.c_str());
  if (cfg.train.total_batch_size == -1)
    log::info("[train] train.total_batch_size = -1: tokens per step from nanochat's scaling rule (below)");
  else
    log::info("[train] %lld tokens per step = %d ranks x %lld seqs x %lld tokens x %lld accumulation steps",
              (long long)cfg.train.total_batch_size, dc.world, (long long)cfg.train.device_batch_size,
              (long long)cfg.model.seq_len, (long long)grad_accum_steps(cfg, dc.world));
}

// A resumed older step forks the timeline (newer steps leave the directory); a fresh run must
// not prune (checkpoint.keep_last) or mix with another run's checkpoints.
void prepare_checkpoint_dir(const StartPoint& sp, const std::string& name, const dist::Context& dc) {
  const Config& cfg = sp.cfg;
  train::check_shared_checkpoint_dir(cfg.checkpoint.dir);  // refuses node-local checkpoint dirs
  if (sp.resuming()) {
    if (dc.rank != 0) return;
    const std::string aside = ckpt::set_aside_newer_steps(
        cfg.checkpoint.dir, json_get<int64_t>(sp.resume_meta, "step", sp.resume_dir + "/meta.json"));
    if (!aside.empty())
      log::warn("[ckpt] resuming %s while newer checkpoints existed: moved them to %s", sp.resume_dir.c_str(),
                aside.c_str());
    return;
  }
  const std::string existing = ckpt::newest_complete_step(cfg.checkpoint.dir);
  if (!existing.empty())
    throw Error(cfg.checkpoint.dir + " already holds checkpoints of a run (newest: " + existing + ")",
                "continue it with ./" + name + " --resume " + cfg.checkpoint.dir +
                    ", or start afresh elsewhere with run.dir=... (or delete that directory)");
}

std::shared_ptr<const tok::Tokenizer> load_stage_tokenizer(const Config& cfg) {
  if (cfg.data.tokenizer.empty())
    throw Error(cfg.source + ": data.tokenizer is not set", "point it at a tokenizer JSON from ./tokenizer train");
  if (!std::filesystem::exists(cfg.data.tokenizer))
    throw Error(cfg.source + ": data.tokenizer = \"" + cfg.data.tokenizer + "\" does not exist",
                "train one with ./tokenizer train --vocab-size N --output " + cfg.data.tokenizer +
                    " INPUT... (for configs/tiny.yaml, ./launch/demo.sh does it)");
  auto tok = std::make_shared<const tok::Tokenizer>(tok::Tokenizer::load(cfg.data.tokenizer));
  train::check_ranks_agree(to_yaml(cfg), tok->sha256(), cfg.data.tokenizer);  // every rank: same config, same tokenizer
  if (cfg.model.vocab_size != 0 && cfg.model.vocab_size != tok->vocab_size())
    throw Error(cfg.source + ": model.vocab_size = " + std::to_string(cfg.model.vocab_size) + " but " +
                    cfg.data.tokenizer + " has " + std::to_string(tok->vocab_size()) + " tokens",
                "set model.vocab_size to 0 (take it from the tokenizer) or use the matching tokenizer");
  return tok;
}

// Device, tokenizer, loaders, the run's length, model and communicator. Decides train.max_steps
// from train.epochs on a fresh run (recorded in sp.cfg, so checkpoints carry it).
TrainerParts assemble_parts(Stage stage, const std::string& name, StartPoint& sp, const dist::Context& dc) {
  Config& cfg = sp.cfg;
  TrainerParts parts;
  parts.device = dist::pick_device(cfg.run.device);
  if (sp.resuming())
    train::check_resume_device(sp.resume_meta, sp.saved_device, parts.device.is_cuda() ? "cuda" : "cpu", sp.resume_dir);
  if (parts.device.is_cpu()) {
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(std::max(1, hw / dc.local_world));
  }
  auto tok = load_stage_tokenizer(cfg);
  if (sp.parent) check_parent_tokenizer(*sp.parent, cfg.data.tokenizer, tok->sha256());
  parts.model = model::make_model(cfg.model, tok->vocab_size(), static_cast<uint64_t>(cfg.run.seed), parts.device);
  // The -1 (auto) batch size and scales, resolved into cfg before anything reads them (scaling.h).
  if (needs_scaling(cfg))
    resolve_scaling(cfg, parts.model->num_scaling_params(), reference_scaling_params(cfg, tok->vocab_size()), dc.world);
  // ./rl samples its batches with the model being trained; the other stages read shards.
  StageLoaders loaders;
  if (stage == Stage::Rl) {
    RlStage rl = make_rl_stage(cfg, parts.model, tok, parts.device, dc.rank, dc.world);
    loaders.train = std::move(rl.loader);
    loaders.epoch_steps = rl.epoch_steps;
    parts.hooks = std::move(rl.hooks);
  } else {
    loaders = make_stage_loaders(stage, cfg, *tok, dc.rank, dc.world, parts.device);
  }
  parts.total_steps = decide_run_steps(cfg, parts.model->num_scaling_params(), loaders.epoch_steps);
  parts.cfg = cfg;
  parts.tokenizer = tok;
  parts.tokenizer_path = cfg.data.tokenizer;
  parts.train_loader = std::move(loaders.train);
  parts.val_loader = std::move(loaders.val);
  parts.stage = name;
  parts.core_bundle = load_training_core_bundle(cfg);
  parts.lineage = sp.resuming() ? sp.resume_meta.value("lineage", nlohmann::json())
                  : sp.parent   ? lineage_of(*sp.parent)
                                : nlohmann::json();
  if (stage != Stage::Pretrain) {
    parts.sample_prompts = chat_sample_prompts(*tok);
    parts.sample_stop = tok->special_id("<|assistant_end|>");
  }
  if (dc.world > 1) parts.comm = dist::make_comm(cfg.dist.backend, parts.device, cfg.dist.timeout_s);
  return parts;
}

// What each rank read of the optimizer files (ZeRO-1: its own share; issue 19, item 17).
void log_optimizer_reads(const ckpt::CheckpointRead& ck) {
  log::info("[ckpt] optimizer state read per rank: %s; the optim files hold %.3f MB",
            per_rank_mb(dist::all_gather(ck.optim_bytes_read)).c_str(), double(ck.optim_file_bytes) / 1e6);
}

// The Trainer from its parts, restored from the checkpoint or started from the parent, then run.
int run_stage(Stage stage, const std::string& name, const StartPoint& sp, TrainerParts parts, const dist::Context& dc) {
  const std::string tokenizer_sha256 = parts.tokenizer->sha256();
  const Config cfg = parts.cfg;
  train::Trainer trainer(std::move(parts));
  if (sp.resuming()) {
    auto ck = ckpt::load_checkpoint(sp.resume_dir, dc.rank, dc.world, ckpt::ReadScope::WithRankFiles,
                                    trainer.optimizer_state_filter());
    if (ck.meta.value("tokenizer_sha256", "") != tokenizer_sha256)
      throw Error("checkpoint " + sp.resume_dir + " was trained with another tokenizer than " + cfg.data.tokenizer);
    trainer.restore(ck);
    log::info("[ckpt] resumed from %s (step %lld)", sp.resume_dir.c_str(), (long long)ck.step);
    log_optimizer_reads(ck);
  } else if (sp.parent) {
    const auto scope = cfg.init.optimizer ? ckpt::ReadScope::WithRankFiles : ckpt::ReadScope::Weights;
    auto ck = ckpt::load_checkpoint(sp.parent->step_dir, dc.rank, dc.world, scope, trainer.optimizer_state_filter());
    trainer.init_from(ck, cfg.init.optimizer);
    log::info("[init] %s weights%s from %s (a %s checkpoint, step %lld)", name.c_str(),
              cfg.init.optimizer ? " and optimizer state" : "", sp.parent->step_dir.c_str(),
              stage_of(sp.parent->meta).c_str(), (long long)sp.parent->step);
  } else if (stage != Stage::Pretrain) {
    log::info("[init] init.from is empty: %s starts from random weights", name.c_str());
  }
  return trainer.run();
}

}  // namespace

int stage_main(Stage stage, int argc, char** argv) {
  Command cmd;
  if (auto answered = parse_command(stage, argc, argv, cmd)) return *answered;
  const dist::Context& dc = dist::init(&argc, &argv);
  dist::install_stop_handlers();
  StartPoint sp = resolve_start(stage, cmd, dc);
  validate_for_world(sp.cfg, dc.world);
  log_run(sp.cfg, dc);
  if (cmd.check_only) {
    log::info("[%s] --check: config and distributed setup are valid", cmd.name.c_str());
    return 0;
  }
  prepare_checkpoint_dir(sp, cmd.name, dc);
  TrainerParts parts = assemble_parts(stage, cmd.name, sp, dc);
  return run_stage(stage, cmd.name, sp, std::move(parts), dc);
}

}  // namespace kiln::train
