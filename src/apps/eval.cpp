// ./eval — evaluate a checkpoint on a task (gsm8k, arc-easy, arc-challenge, mmlu, humaneval).
// Today it checks its arguments and says plainly that evaluation is not implemented yet.
#include <CLI/CLI.hpp>

#include "core/error.h"  // Error
#include "core/log.h"    // log::info
#include "dist/dist.h"   // guarded_main, init

namespace {
int eval_main(int argc, char** argv) {
  CLI::App app{"Evaluate a checkpoint on a task.\n\nUsage:\n  ./eval --task gsm8k --ckpt ckpt/sft/\n"
               "  mpirun -np N ./eval --task mmlu --ckpt ckpt/sft/\n\n"
               "Status of this build: argument checking only; the engine and the tasks are not "
               "implemented yet.", "eval"};
  std::string task, ckpt;
  int64_t max_problems = -1;
  app.add_option("--task", task, "task to run")
      ->required()
      ->check(CLI::IsMember({"gsm8k", "arc-easy", "arc-challenge", "mmlu", "humaneval"}));
  app.add_option("--ckpt", ckpt, "checkpoint directory (newest complete step is used)");
  app.add_option("--max-problems", max_problems, "evaluate at most N problems (-1: all)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  kiln::dist::init(&argc, &argv);
  kiln::log::info("[eval] task %s, checkpoint %s", task.c_str(), ckpt.empty() ? "(none)" : ckpt.c_str());
  kiln::log::info("[eval] not implemented yet in this build: the engine and the task scorers do not exist.");
  return 2;
}
}  // namespace

int main(int argc, char** argv) { return kiln::dist::guarded_main(eval_main, argc, argv); }
