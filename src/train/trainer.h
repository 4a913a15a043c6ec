// The Trainer: one top-to-bottom loop for pretraining, midtraining and SFT (they differ only in
// the loader and the schedule). Gradient accumulation to train.total_batch_size tokens, bf16
// autocast on CUDA, clipping, NaN/Inf stop, val bits-per-byte, samples, metrics.jsonl, progress
// line with tok/s, MFU and ETA, and checkpoints that resume bit-exactly (on CPU).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/config.h"
#include "data/loader.h"
#include "dist/comm.h"
#include "model/lm.h"
#include "tokenizer/tokenizer.h"
#include "ckpt/checkpoint.h"

namespace kiln::eval { struct CoreBundle; }

namespace kiln::train {

// What a stage may add to the one loop (./rl, issue 25); each is optional. All are collective:
// every rank calls them at the same points.
struct StageHooks {
  // After each optimizer step: fields appended to that step's metrics record.
  std::function<nlohmann::ordered_json()> step_record;
  // Every eval.every steps and at the last (instead of validation bits per byte): one record.
  std::function<nlohmann::ordered_json(int64_t step)> evaluate;
  // The stage's own resumable tensors, named "stage.*": this rank's share on save; on restore, every
  // rank's share (they travel with the optimizer tensors, by name, so any world size reads them).
  std::function<model::NamedTensors()> save_state;
  std::function<void(const std::map<std::string, torch::Tensor>&)> restore_state;
};

struct TrainerParts {
  Config cfg;
  int64_t total_steps = -1;  // the run's length (run_length.h decides it)
  torch::Device device = torch::kCPU;
  model::Model model;
  std::unique_ptr<data::Loader> train_loader;
  std::unique_ptr<data::Loader> val_loader;  // may be null: no validation
  std::shared_ptr<const tok::Tokenizer> tokenizer;
  std::string tokenizer_path;
  std::unique_ptr<dist::Comm> comm;  // null in a world of one: no gradient sync
  std::string stage = "pretrain";    // recorded in meta.json; --resume refuses another stage's
  nlohmann::json lineage;            // the parent checkpoint this stage started from (null: none)
  // Chat stages: fixed prompts rendered for completion, sampled greedily up to sample_stop.
  std::vector<std::vector<int64_t>> sample_prompts;
  int64_t sample_stop = -1;
  std::shared_ptr<const eval::CoreBundle> core_bundle;  // eval.core_every > 0: CORE's bundle (core_metric.h)
  StageHooks hooks;
};

class Trainer {
 public:
  explicit Trainer(TrainerParts parts);
  ~Trainer();
  // Continue from a checkpoint: weights, optimizer state, loader cursor, RNG, step.
  void restore(const ckpt::CheckpointRead& ck);
  // The optimizer tensors this rank keeps (ZeRO-1: its own share): what load_checkpoint should read.
  model::TensorFilter optimizer_state_filter() const;
  // Start a later stage from a parent checkpoint: its weights, and its optimizer state when
  // `optimizer` (learning rates stay this run's). Loader, RNG and step start fresh.
  void init_from(const ckpt::CheckpointRead& ck, bool optimizer);
  // Train to the last step (or a stop signal) and return the process exit code.
  int run();

 private:
  struct State;
  std::unique_ptr<State> s_;
  void load_weights(const ckpt::CheckpointRead& ck);
  double evaluate();
  void core();  // CORE of the current weights into metrics.jsonl (all ranks)
  void sample();
  void log_optimizer_memory();  // collective: every rank's optimizer state bytes, after a step
  void save(int64_t step, bool stopped_early, const nlohmann::ordered_json& last_metrics);
};

}  // namespace kiln::train
