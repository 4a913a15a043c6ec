// Where ./eval's numbers go: <DIR>/eval/<task>.json (rank 0, written atomically) with the
// checkpoint, the options and the counts, and one line per task on stdout; ChatCORE from the
// five chat tasks (nanochat: mean centered accuracy, only when all of them ran).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "eval/runner.h"

namespace kiln::eval {

// Writes <out_dir>/eval/<task>.json and prints the task's line (rank 0 only). Returns the path.
// With --oracle the file goes to <out_dir>/eval/oracle-<gold|wrong>/<task>.json instead, and the
// line says it is a self-check: scorer checks never replace or pass for the model's results.
std::string write_result(const std::string& out_dir, const TaskResult& r, const EvalModel& em, const EvalOptions& o);
// "arc-easy     accuracy 0.2517  correct 598/2376  (12.3 s)" (bpb: "bpb  0.9876  windows ...").
std::string result_line(const TaskResult& r);
// ChatCORE over results that hold all five chat tasks; nullopt when one is missing.
std::optional<TaskResult> chatcore(const std::vector<TaskResult>& results);

}  // namespace kiln::eval
