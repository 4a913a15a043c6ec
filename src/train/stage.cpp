// Command line and start-up of a training stage: flags -> dist::init -> config (from the file, or
// from the checkpoint on --resume) -> device, tokenizer, loaders, model -> Trainer::run().
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
#include "core/json_file.h"  // read_json_file, json_get
#include "core/log.h"     // log::info
#include "dist/comm.h"     // make_comm, bind_local_device
#include "dist/dist.h"     // dist::init, ctx, broadcast_string
#include "dist/signals.h"  // install_stop_handlers
#include "model/lm.h"      // make_model
#include "train/checkpoint.h"  // find_latest_checkpoint, load_checkpoint, set_aside_newer_steps
#include "train/startup_checks.h"  // check_shared_checkpoint_dir, check_ranks_agree, check_resume_device, check_resume_world
#include "train/lineage.h"     // Parent, adopt_parent_shape, check_resume_stage, lineage_of
#include "train/stage_data.h"  // make_stage_loaders, chat_sample_prompts
#include "train/trainer.h"     // Trainer

namespace kiln::train {
namespace {

const char* stage_name(Stage s) {
  switch (s) {
    case Stage::Pretrain: return "pretrain";
    case Stage::Midtrain: return "midtrain";
    case Stage::Sft: return "sft";
  }
  return "?";
}

const char* stage_blurb(Stage s) {
  switch (s) {
    case Stage::Pretrain: return "Pretrain a GPT on token shards (data.train) from a YAML config.";
    case Stage::Midtrain: return "Midtrain a base checkpoint on packed conversations.";
    case Stage::Sft: return "Supervised fine-tuning on padded conversations with a masked loss.";
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

torch::Device pick_device(const std::string& want) {
  const bool cuda = torch::cuda::is_available();
  if (want == "cuda" && !cuda)
    throw Error("run.device = cuda but no CUDA device is visible", "use run.device=cpu (or auto)");
  if (want == "cuda" || (want == "auto" && cuda)) return dist::bind_local_device();  // local rank -> GPU
  return torch::kCPU;
}

}  // namespace

int stage_main(Stage stage, int argc, char** argv) {
  const std::string name = stage_name(stage);
  CLI::App app{std::string(stage_blurb(stage)) +
                   "\n\nUsage:\n  ./" + name + " CONFIG.yaml [section.key=value ...]\n  ./" + name +
                   " --resume DIR [section.key=value ...]\n  mpirun -np N ./" + name + " CONFIG.yaml",
               name};
  std::vector<std::string> args;
  std::string resume;
  bool print_keys = false;
  bool check_only = false;
  app.add_option("args", args, "CONFIG.yaml followed by section.key=value overrides");
  app.add_option("--resume", resume,
                 "continue from the newest complete checkpoint in DIR (a checkpoint dir, a step dir or a run "
                 "dir); the config comes from the checkpoint");
  app.add_flag("--check", check_only, "validate the config and the MPI setup, print them, and exit");
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
  std::string config_path;
  std::vector<std::string> overrides;
  for (const auto& a : args) {
    if (!resume.empty() && a.find('=') == std::string::npos)
      throw Error("./" + name + " " + a + " --resume " + resume + ": --resume takes the config from the checkpoint, so " +
                      a + " would be ignored",
                  "continue the run with ./" + name + " --resume " + resume + " [section.key=value ...], or start a "
                  "new run from " + a + " without --resume");
    if (config_path.empty() && a.find('=') == std::string::npos && resume.empty()) config_path = a;
    else overrides.push_back(a);
  }
  if (config_path.empty() && resume.empty())
    throw Error("no config given", "run ./" + name + " CONFIG.yaml (e.g. configs/tiny.yaml) or ./" + name +
                                       " --resume DIR; see ./" + name + " --help");

  const dist::Context& dc = dist::init(&argc, &argv);
  dist::install_stop_handlers();
  Config cfg;
  std::string ckpt_dir;
  nlohmann::json meta;     // the resumed checkpoint's meta.json
  std::optional<Parent> parent;  // init.from of a fresh run
  std::string saved_device;  // run.device of the resumed run
  if (!resume.empty()) {
    // Rank 0 finds and verifies the checkpoint once; every rank then loads the same one.
    std::string found, err;
    if (dc.rank == 0) {
      try {
        found = train::find_latest_checkpoint(resume);
      } catch (const Error& e) {
        err = e.what();
      }
    }
    err = dist::broadcast_string(err);
    if (!err.empty()) throw Error(err);
    ckpt_dir = dist::broadcast_string(found);
    meta = read_json_file(ckpt_dir + "/meta.json");
    check_resume_stage(meta, ckpt_dir, name);  // ./midtrain --resume runs/sft/ckpt names ./sft
    cfg = load_config_text(json_get<std::string>(meta, "config", ckpt_dir + "/meta.json"), ckpt_dir + "/meta.json");
    saved_device = cfg.run.device;
    // An override that restates the checkpoint's value is fine (a requeued Slurm job repeats its
    // command line, overrides included); one that changes the math of the run is refused.
    const std::string saved = to_yaml(cfg);
    for (const auto& o : overrides) {
      const std::string key = o.substr(0, o.find('='));
      if (resume_override_allowed(key)) continue;
      Config probe = cfg;
      apply_overrides(probe, {o});
      if (to_yaml(probe) != saved)
        throw Error("--resume: the override '" + o + "' would change the math of the run being resumed",
                    "on resume only checkpoint.*, eval.*, log.*, run.dir, run.name, run.device (same device type), "
                    "train.skip_nonfinite, dist.timeout_s, dist.backend and dist.zero1 may change; start a new run to change "
                    "anything else");
    }
    apply_overrides(cfg, overrides);
    // Another world size is fine (the checkpoint is world-independent) if the batch can be kept.
    check_resume_world(json_get<int>(meta, "world_size", ckpt_dir + "/meta.json"), dc.world,
                       cfg.train.total_batch_size, cfg.train.device_batch_size, cfg.model.seq_len, ckpt_dir);
  } else {
    cfg = load_config(config_path, overrides);
    if (!cfg.init.from.empty()) {  // a later stage: the parent's shape, checked against the config
      std::string found, err;
      if (dc.rank == 0) {
        try {
          found = resolve_parent_dir(cfg.init.from);
        } catch (const Error& e) {
          err = e.what();
        }
      }
      err = dist::broadcast_string(err);
      if (!err.empty()) throw Error(err);
      parent = read_parent(dist::broadcast_string(found));
      adopt_parent_shape(cfg, *parent);
    }
  }
  validate_for_world(cfg, dc.world);
  const ModelShape shape = derive_shape(cfg.model);

  log::info("[config] %s (resolved):\n%s", cfg.source.c_str(), to_yaml(cfg).c_str());
  log::info("[model] depth %lld: %s", (long long)shape.n_layer, shape.rule.c_str());
  log::info("[dist] world %d (%d on this node, host %s)", dc.world, dc.local_world, dc.host.c_str());
  log::info("[train] %lld tokens per step = %d ranks x %lld seqs x %lld tokens x %lld accumulation steps",
            (long long)cfg.train.total_batch_size, dc.world, (long long)cfg.train.device_batch_size,
            (long long)cfg.model.seq_len, (long long)grad_accum_steps(cfg, dc.world));
  if (check_only) {
    log::info("[%s] --check: config and distributed setup are valid", name.c_str());
    return 0;
  }
  train::check_shared_checkpoint_dir(cfg.checkpoint.dir);  // refuses node-local checkpoint dirs
  if (!ckpt_dir.empty() && dc.rank == 0) {
    // Resuming an older step forks the timeline: newer steps leave the checkpoint directory.
    const std::string aside = train::set_aside_newer_steps(cfg.checkpoint.dir, json_get<int64_t>(meta, "step", ckpt_dir + "/meta.json"));
    if (!aside.empty())
      log::warn("[ckpt] resuming %s while newer checkpoints existed: moved them to %s", ckpt_dir.c_str(), aside.c_str());
  }
  if (ckpt_dir.empty()) {
    // A fresh run must not prune (checkpoint.keep_last) or mix with another run's checkpoints.
    const std::string existing = train::newest_complete_step(cfg.checkpoint.dir);
    if (!existing.empty())
      throw Error(cfg.checkpoint.dir + " already holds checkpoints of a run (newest: " + existing + ")",
                  "continue it with ./" + name + " --resume " + cfg.checkpoint.dir +
                      ", or start afresh elsewhere with run.dir=... (or delete that directory)");
  }

  // ---- parts: device, tokenizer, loaders, model ----
  const torch::Device device = pick_device(cfg.run.device);
  if (!ckpt_dir.empty()) train::check_resume_device(meta, saved_device, device.is_cuda() ? "cuda" : "cpu", ckpt_dir);
  if (device.is_cpu()) {
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(std::max(1, hw / dc.local_world));
  }
  if (cfg.data.tokenizer.empty())
    throw Error(cfg.source + ": data.tokenizer is not set", "point it at a tokenizer JSON from ./tokenizer train");
  if (!std::filesystem::exists(cfg.data.tokenizer))
    throw Error(cfg.source + ": data.tokenizer = \"" + cfg.data.tokenizer + "\" does not exist",
                "train one with ./tokenizer train --vocab-size N --output " + cfg.data.tokenizer +
                    " INPUT... (for configs/tiny.yaml, ./launch/demo.sh does it)");
  auto tok = std::make_shared<const tok::Tokenizer>(tok::Tokenizer::load(cfg.data.tokenizer));
  const int64_t vocab = tok->vocab_size();
  train::check_ranks_agree(to_yaml(cfg), tok->sha256(), cfg.data.tokenizer);  // every rank: same config, same tokenizer
  if (cfg.model.vocab_size != 0 && cfg.model.vocab_size != vocab)
    throw Error(cfg.source + ": model.vocab_size = " + std::to_string(cfg.model.vocab_size) + " but " +
                    cfg.data.tokenizer + " has " + std::to_string(vocab) + " tokens",
                "set model.vocab_size to 0 (take it from the tokenizer) or use the matching tokenizer");

  if (parent) check_parent_tokenizer(*parent, cfg.data.tokenizer, tok->sha256());

  auto loaders = make_stage_loaders(stage, cfg, *tok, dc.rank, dc.world, device);
  if (ckpt_dir.empty() && cfg.train.max_steps < 0 && loaders.epoch_steps > 0) {
    cfg.train.max_steps = loaders.epoch_steps;  // resolved once; a resume reads it from the checkpoint
    log::info("[train] train.epochs = %g over data.train -> train.max_steps = %lld", cfg.train.epochs,
              (long long)cfg.train.max_steps);
  }
  train::TrainerParts parts;
  parts.cfg = cfg;
  parts.device = device;
  parts.tokenizer = tok;
  parts.tokenizer_path = cfg.data.tokenizer;
  parts.train_loader = std::move(loaders.train);
  parts.val_loader = std::move(loaders.val);
  parts.stage = name;
  parts.lineage = !ckpt_dir.empty() ? meta.value("lineage", nlohmann::json()) : parent ? lineage_of(*parent)
                                                                                       : nlohmann::json();
  if (stage != Stage::Pretrain) {
    parts.sample_prompts = chat_sample_prompts(*tok);
    parts.sample_stop = tok->special_id("<|assistant_end|>");
  }
  parts.model = model::make_model(cfg.model, vocab, static_cast<uint64_t>(cfg.run.seed), device);
  if (dc.world > 1) parts.comm = dist::make_comm(cfg.dist.backend, device, cfg.dist.timeout_s);

  train::Trainer trainer(std::move(parts));
  if (!ckpt_dir.empty()) {
    auto ck = train::load_checkpoint(ckpt_dir, dc.rank, dc.world);
    if (ck.meta.value("tokenizer_sha256", "") != tok->sha256())
      throw Error("checkpoint " + ckpt_dir + " was trained with another tokenizer than " + cfg.data.tokenizer);
    trainer.restore(ck);
    log::info("[ckpt] resumed from %s (step %lld)", ckpt_dir.c_str(), (long long)ck.step);
  } else if (parent) {
    auto ck = train::load_checkpoint(parent->step_dir, dc.rank, dc.world, /*load_rank_files=*/cfg.init.optimizer);
    trainer.init_from(ck, cfg.init.optimizer);
    log::info("[init] %s weights%s from %s (a %s checkpoint, step %lld)", name.c_str(),
              cfg.init.optimizer ? " and optimizer state" : "", parent->step_dir.c_str(),
              stage_of(parent->meta).c_str(), (long long)parent->step);
  } else if (stage != Stage::Pretrain) {
    log::info("[init] init.from is empty: %s starts from random weights", name.c_str());
  }
  return trainer.run();
}

}  // namespace kiln::train
