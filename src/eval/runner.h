// ./eval's distributed runner: a task's examples are cut into batches of --batch-size, and rank r
// of N takes batches r, r+N, ... (so every batch, and hence every prediction, is the same for any
// N); per-rank counts are summed through dist. A progress line with ETA goes to stderr (rank 0).
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>

#include "eval/sandbox.h"
#include "eval/tasks.h"
#include "ckpt/load_model.h"

namespace kiln::eval {

struct EvalOptions {
  std::string data_dir = "data/tasks";
  int64_t max_examples = -1;    // the first N examples of a task (-1: all)
  int64_t num_samples = 1;      // generative: pass@k with k samples per problem
  double temperature = 0.0;     // generative sampling (0 = greedy)
  int64_t top_k = 50;
  int64_t max_new_tokens = 512;
  int64_t batch_size = 0;       // examples per forward / generate call (0: 8; bpb: train.device_batch_size)
  uint64_t seed = 0;
  Oracle oracle = Oracle::None;
  int jobs = 0;                 // sandboxes at once per rank (0: the cores of this rank)
  SandboxLimits sandbox;
  // Multiple choice: appends to a JSONL file each example's prompt ids, letter ids and prediction (rank
  // r > 0 of N writes FILE.r), so another implementation can check the logit reading; "" = none.
  std::string dump_examples;
};

struct TaskResult {
  std::string task;
  int64_t correct = 0, total = 0;
  double score = 0;                     // accuracy (bpb for the bpb task)
  double seconds = 0;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // task-specific details
};

struct EvalModel {
  ckpt::LoadedModel m;
  torch::Device device = torch::kCPU;
  bool autocast = false;  // bf16 autocast as in training (CUDA by default)
  std::string stage = "pretrain";  // meta.json's stage
  std::string meta_sha256;         // of the step's meta.json: results name the checkpoint by it
};

// Loads the newest complete checkpoint under `ckpt` on this rank's device ("auto" | "cpu" | "cuda").
EvalModel load_eval_model(const std::string& ckpt, const std::string& device);

// One chat task (categorical or generative), all ranks together; every rank gets the totals.
TaskResult run_task(const TaskSpec& t, EvalModel& em, const EvalOptions& o);
// Bits per byte on the checkpoint's validation data (config data.val), by the Trainer's
// definition for the checkpoint's stage (bpb_definition), so the two agree on the same rows:
// pretrain: windows of seq_len, every token; chat stages: the stage's validation loader (packed or
// padded, as trained) and its trained targets only, eval.tokens worth of batches per rank.
TaskResult run_bpb(EvalModel& em, const EvalOptions& o);
// The text bpb results and the report card carry to say which definition a number follows.
std::string bpb_definition(const std::string& stage);

// ---- shared by the runners ----
// The batches of n examples this rank takes: [begin, end) pairs.
std::vector<std::pair<int64_t, int64_t>> rank_batches(int64_t n, int64_t batch);

// A task's result from this rank's counts: correct and total summed over ranks, score = accuracy.
TaskResult summed_result(const std::string& task, int64_t correct, int64_t done);

class Progress {
 public:
  Progress(std::string task, int64_t total);
  // After a batch on this rank: examples done and correct so far on this rank.
  void update(int64_t done_local, int64_t correct_local);

 private:
  std::string task_;
  int64_t total_;
  double t0_, last_ = 0;
};

// Generative tasks (generative.cpp).
TaskResult run_generative(const TaskSpec& t, const std::vector<data::TaskExample>& exs, EvalModel& em,
                          const EvalOptions& o);

}  // namespace kiln::eval
