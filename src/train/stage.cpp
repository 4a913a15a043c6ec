// Command line and start-up of a training stage: flags -> dist::init -> config -> printed
// resolved config and derived shapes. The Trainer (issue #4) plugs in at the marked place.
#include "train/stage.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

#include "core/config.h"  // load_config, to_yaml, derive_shape, grad_accum_steps
#include "core/error.h"   // Error
#include "core/log.h"     // log::info
#include "dist/dist.h"    // dist::init, ctx

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

}  // namespace

int stage_main(Stage stage, int argc, char** argv) {
  const std::string name = stage_name(stage);
  CLI::App app{std::string(stage_blurb(stage)) +
                   "\n\nUsage:\n  ./" + name + " CONFIG.yaml [section.key=value ...]\n  ./" + name +
                   " --resume DIR [section.key=value ...]\n  mpirun -np N ./" + name +
                   " CONFIG.yaml\n\nStatus of this build: config loading, validation, overrides and the "
                   "MPI setup work;\nthe training loop, checkpoints and --resume are not implemented yet.",
               name};
  std::vector<std::string> args;
  std::string resume;
  bool print_keys = false;
  bool check_only = false;
  app.add_option("args", args, "CONFIG.yaml followed by section.key=value overrides");
  app.add_option("--resume", resume, "continue from the newest complete checkpoint in DIR");
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
    if (config_path.empty() && a.find('=') == std::string::npos && resume.empty()) config_path = a;
    else overrides.push_back(a);
  }
  if (config_path.empty() && resume.empty())
    throw Error("no config given", "run ./" + name + " CONFIG.yaml (e.g. configs/tiny.yaml) or ./" + name +
                                       " --resume DIR; see ./" + name + " --help");

  const dist::Context& dc = dist::init(&argc, &argv);
  if (!resume.empty())
    throw Error("--resume " + resume + ": resuming is not implemented yet in this build",
                "start a fresh run with ./" + name + " CONFIG.yaml");

  Config cfg = load_config(config_path, overrides);
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
  // The Trainer plugs in here (issue #4).
  log::info("[%s] not implemented yet in this build: the training loop does not exist; the config "
            "and the distributed setup were checked, nothing was trained.", name.c_str());
  return 2;
}

}  // namespace kiln::train
