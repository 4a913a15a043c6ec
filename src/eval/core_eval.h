// nanochat's CORE metric (DCLM's in-context benchmark) over an eval bundle (core_bundle.h):
// per task, the accuracy of the model on the bundle's items (multiple choice and schema: the
// option with the lowest mean loss over its continuation tokens; language modeling: the greedy
// prediction equals the continuation), centred by the task's random baseline in percent,
// (acc - b/100) / (1 - b/100); CORE is the mean of the centred accuracies.
// Distributed: a task's examples are cut into groups of --batch-size (default 8) and rank r takes
// groups r, r+N, ...; one group's examples go through the model in forwards of at most
// batch-size x seq_len padded tokens (the options of one example always together). The groups do
// not depend on N, so every per-example loss and verdict is the same on any number of ranks.
#pragma once
#include <string>

#include "eval/core_bundle.h"
#include "eval/runner.h"

namespace kiln::eval {

struct CoreOptions {
  int64_t max_per_task = -1;  // nanochat's --max-per-task: the first N of the shuffled items (<= 0: all)
  std::string dump_path;      // when set: one JSONL line per example (ids, spans, losses, verdict), rank 0
};

// Evaluates every task of the bundle; all ranks together, every rank gets the result. The
// TaskResult is "core": score = CORE, correct/total over all tasks, extra = per-task details.
TaskResult run_core(const CoreBundle& bundle, EvalModel& em, const EvalOptions& o, const CoreOptions& co);

// (accuracy - baseline/100) / (1 - baseline/100): eval_meta_data.csv's baselines are percents.
double core_centered(double accuracy, double baseline_percent);

// nanochat's choice: the first option whose mean loss is strictly below all before it (Python's
// min() then list.index(); a NaN, from an empty span, is never replaced nor replaces).
int64_t core_argmin(const std::vector<double>& mean_losses);

// nanochat's CSV (base_eval/<model>.csv): Task, Accuracy, Centered per task, then the CORE row.
std::string core_csv(const TaskResult& core);

}  // namespace kiln::eval
