// The command line shared by ./pretrain, ./midtrain and ./sft: CONFIG [section.key=value ...]
// [--resume DIR]. The three stages differ only in the loader and the schedule (ARCHITECTURE.md
// §4), so they share this one entry point instead of three copies of the same main().
#pragma once

namespace kiln::train {

enum class Stage { Pretrain, Midtrain, Sft };

// The body of a stage binary; run it under dist::guarded_main.
int stage_main(Stage stage, int argc, char** argv);

}  // namespace kiln::train
