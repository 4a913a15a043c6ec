// The DCLM eval bundle that nanochat's CORE reads (scripts/base_eval.py): core.yaml lists the
// tasks (label, dataset_uri, num_fewshot, icl_task_type, continuation_delimiter), eval_data/ holds
// one JSONL file per task, eval_meta_data.csv gives each task's random baseline in percent.
// Everything is read and checked before any model work, so a bad bundle fails in a second with
// a kiln::Error naming the file, line and key, never hours into a run.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::eval {

enum class CoreTaskType { MultipleChoice, Schema, LanguageModeling };
const char* core_task_type_name(CoreTaskType t);  // "multiple_choice" | "schema" | "language_modeling"

// One JSONL record; which fields are set depends on the task type:
//   multiple_choice: query, choices, gold     schema: context_options, continuation, gold
//   language_modeling: context, continuation
struct CoreItem {
  std::string query, context, continuation;
  std::vector<std::string> choices, context_options;
  int64_t gold = 0;
  int64_t line = 0;  // 1-based line in the JSONL file (for messages)
};

struct CoreTask {
  std::string label;        // core.yaml `label`, also the key in eval_meta_data.csv
  std::string path;         // eval_data/<dataset_uri>
  CoreTaskType type = CoreTaskType::MultipleChoice;
  int64_t num_fewshot = 0;  // core.yaml `num_fewshot[0]`
  std::string delimiter = " ";  // `continuation_delimiter` (nanochat's default: one space)
  double random_baseline = 0;   // percent, as in eval_meta_data.csv
  std::vector<CoreItem> items;  // in file order
};

struct CoreBundle {
  std::string dir;
  std::vector<CoreTask> tasks;  // in core.yaml order
};

// The default bundle location (a relative path: ./eval runs from the repository or run directory).
inline const char* kDefaultCoreBundle = "data/eval_bundle";
// Reads and validates the whole bundle; throws kiln::Error naming file, line and key.
CoreBundle load_core_bundle(const std::string& dir);
// One task's JSONL file, validated for its type (exposed for tests).
std::vector<CoreItem> read_core_jsonl(const std::string& path, CoreTaskType type);

}  // namespace kiln::eval
