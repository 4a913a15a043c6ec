// ./rl (issue 25): nanochat's simplified GRPO on GSM8K (scripts/chat_rl.py) as a batch source and
// stage hooks for the one training loop (trainer.h). Each step takes rl.examples_per_step
// questions (strided over ranks), samples rl.num_samples completions per question with the engine
// (calculator live), rewards each with ./eval's GSM8K answer rule, and yields micro-batches whose
// per-token weights make the step's loss the token-level (DAPO) policy gradient with advantage
// r - mean(r) per question: no std division, no KL, no ratio clipping.
//
// Note [RL lanes]: question slot i of a step (0 <= i < examples_per_step) is a lane with its own
// sampling RNG stream, seeded from (run.seed, i); rank r of W owns lanes r, r+W, ... and question
// position step*examples_per_step + i. The global questions and samples of a step therefore do not
// depend on the world size, and a checkpoint holds every lane's stream by name ("stage.rl.lane_*",
// with the optimizer tensors), so any number of ranks resumes them.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/config.h"
#include "data/loader.h"
#include "data/tasks.h"
#include "model/lm.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"  // StageHooks

namespace kiln::train {

// One sampled completion of a question, as the engine returned it.
struct RlSample {
  std::vector<int64_t> ids;   // prompt + generated tokens (the stop token excluded)
  std::vector<uint8_t> mask;  // per id: 1 = sampled (trained on), 0 = prompt or forced tool output
  double reward = 0;
};

// A completion as trained on: prompt + generated ids; the mask is 0 over the prompt and over the
// tokens the calculator forced (gen_mask 0: chat_rl.py trains neither), 1 over sampled tokens.
RlSample make_rl_sample(const std::vector<int64_t>& prompt, const std::vector<int64_t>& gen_ids,
                        const std::vector<uint8_t>& gen_mask, double reward);

// Rows [begin, end) of one question's group as a micro-batch (chat_rl.py's get_batch and its pass
// loop): padded with pad_id to the group's longest row; target t is -1 unless token t+1 was
// sampled; advantage = reward - mean(reward over the group); weights = advantage / (valid targets
// of these rows x passes per question x questions per step), so that the step's summed loss over
// all ranks is nanochat's objective (its per-rank mean, averaged over ranks).
data::Batch rl_micro_batch(const std::vector<RlSample>& group, size_t begin, size_t end, int64_t passes,
                           int64_t examples_per_step, int64_t pad_id, torch::Device device);

// Fills the derived batch of a fresh ./rl run: train.total_batch_size = examples_per_step x
// num_samples x model.seq_len (row slots per step), so the loop's accumulation count is the
// number of micro-batches (questions per rank x num_samples / device_batch_size). Throws
// kiln::Error naming the keys when the shape does not divide.
void resolve_rl_batch(Config& cfg);

struct RlStage {
  std::unique_ptr<data::Loader> loader;
  StageHooks hooks;
  int64_t epoch_steps = -1;  // steps covering train.epochs passes over rl.train
};

// The loader (it samples with `model` on each question's first micro-batch) and the hooks
// (per-step reward/length/tool-call record, pass@k on rl.val, the lanes' RNG in checkpoints).
// Reads rl.train / rl.val; rows without a parsable answer are counted, skipped and reported.
RlStage make_rl_stage(const Config& cfg, model::Model model, std::shared_ptr<const tok::Tokenizer> tok,
                      torch::Device device, int rank, int world);

}  // namespace kiln::train
