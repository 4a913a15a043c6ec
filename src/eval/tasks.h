// The tasks of ./eval and what each is scored against: its data file under the task data dir
// (data_tools/fetch.sh layout), its reader, whether it is categorical (argmax over answer letters)
// or generative (the engine writes a completion), and its ChatCORE baseline (nanochat §5).
#pragma once
#include <string>
#include <vector>

#include "data/tasks.h"

namespace kiln::eval {

struct TaskSpec {
  std::string name;      // "arc-easy", ...
  data::TaskKind kind;   // which reader (src/data/tasks.h)
  std::string rel_path;  // under --data-dir
  bool categorical;      // ARC/MMLU: letters at the last prompt position; else generated
  double baseline;       // ChatCORE: 0.25 for 4-way multiple choice, 0 for generative
};

// The five ChatCORE tasks, in nanochat's order.
const std::vector<TaskSpec>& chat_tasks();
// A task by name; throws kiln::Error naming the value and listing the names.
const TaskSpec& task_spec(const std::string& name);
// The task's data path under data_dir, checked to exist (the error names the fetch command).
std::string task_data_path(const TaskSpec& t, const std::string& data_dir);
// ChatCORE's centered accuracy: (acc - baseline) / (1 - baseline).
double centered_accuracy(double accuracy, double baseline);

// The self-check of --oracle: score the gold answer (must give 100 %) or a wrong one (0 %)
// instead of the model's, through the same scorer, sandbox and bookkeeping.
enum class Oracle { None, Gold, Wrong };
// MC: a letter; GSM8K: a completion text; HumanEval: a completion (code).
std::string oracle_answer(const TaskSpec& t, const data::TaskExample& ex, Oracle o);

// Scorers. MC: the predicted letter equals the gold one. GSM8K: the "#### " numbers agree
// (commas stripped, string equality as nanochat). HumanEval: the program to run in the sandbox
// (imports + extracted code + tests + check(entry_point)); it passed when it exits 0.
bool score_mc(const std::string& letter, const data::TaskExample& ex);
bool score_gsm8k(const std::string& completion, const data::TaskExample& ex);
std::string humaneval_program(const std::string& completion, const data::TaskExample& ex);

}  // namespace kiln::eval
