// The report card (nanochat's report.md): for the evaluated checkpoint and each stage it came
// from (meta.json lineage), the config summary, training time, tokens, final losses and bpb, a
// loss-curve PNG from metrics.jsonl, and the ./eval results; a summary table across stages first.
#pragma once
#include <string>

namespace kiln::eval {

// Writes report.md (and loss_<stage>.png beside it) into the run directory of the newest complete
// checkpoint under `ckpt` (config run.dir, else the folder above the checkpoint dir). Returns
// the report's path. Call on one rank.
std::string write_report(const std::string& ckpt);

}  // namespace kiln::eval
