// The command line shared by ./pretrain, ./midtrain, ./sft and ./rl: CONFIG [section.key=value ...]
// [--resume DIR]. The stages differ only in the loader and the schedule (docs/architecture.md,
// "How a run flows"), so they share this one entry point instead of copies of the same main(). A
// new stage is an enum value, its name and blurb in stage.cpp, its loaders in stage_data.cpp and a
// main() that calls stage_main: start-up (resume, init.from, checks, parts) is not copied.
#pragma once

namespace kiln::train {

enum class Stage { Pretrain, Midtrain, Sft, Rl };

// The body of a stage binary; run it under dist::guarded_main.
int stage_main(Stage stage, int argc, char** argv);

}  // namespace kiln::train
