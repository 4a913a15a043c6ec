// ./eval — score a checkpoint as nanochat's chat_eval: ARC-Easy/Challenge and MMLU by the answer
// letter's logit, GSM8K and HumanEval by generating (calculator live; programs in the sandbox),
// bits per byte on the validation shards, ChatCORE, and the report card. Runs under mpirun -np N.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <thread>

#include "core/error.h"      // Error
#include "core/json_file.h"  // read_json_file, write_text_file
#include "core/log.h"        // log::warn
#include "dist/dist.h"       // guarded_main, init, ctx
#include "eval/core_bundle.h"  // load_core_bundle, kDefaultCoreBundle
#include "eval/core_eval.h"  // run_core, core_csv
#include "eval/report.h"     // write_report
#include "eval/results.h"    // write_result, chatcore
#include "eval/runner.h"     // EvalOptions, load_eval_model, run_task, run_bpb
#include "eval/tasks.h"      // task_spec, chat_tasks, Oracle
#include "train/tb_writer.h"  // TbWriter

namespace {
using namespace kiln;

// "arc-easy,mmlu" -> {"arc-easy", "mmlu"}; each must be a task (all/chatcore/report stand alone).
std::vector<std::string> split_tasks(const std::string& list) {
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t e; b <= list.size(); b = e + 1) {
    e = std::min(list.find(',', b), list.size());
    const std::string name = list.substr(b, e - b);
    if (name != "bpb" && name != "core") eval::task_spec(name);  // throws naming the value
    out.push_back(name);
  }
  return out;
}

int eval_main(int argc, char** argv) {
  CLI::App app{"Evaluate a checkpoint.\n\nUsage:\n  ./eval --task gsm8k --ckpt ckpt/sft/\n"
               "  mpirun -np N ./eval --task mmlu --ckpt ckpt/sft/ --max-examples 500\n"
               "  ./eval --task all --ckpt runs/sft/ckpt      # every task, ChatCORE and report.md\n"
               "  ./eval --task report --ckpt runs/sft/ckpt   # report.md from the results so far\n"
               "  ./eval --task core --ckpt runs/d20/ckpt --bundle data/eval_bundle   # nanochat's CORE\n\n"
               "Results go to <ckpt>/eval/<task>.json and one line per task on stdout; task data\n"
               "comes from --data-dir (fill it with data_tools/fetch.sh tasks data/tasks).",
               "eval"};
  std::string task, ckpt, device = "auto", oracle = "none";
  eval::EvalOptions o;
  app.add_option("--task", task,
                 "gsm8k | arc-easy | arc-challenge | mmlu | humaneval | bpb | core (or a comma-separated list of these) "
                 "| chatcore | all | report")
      ->required();
  app.add_option("--ckpt", ckpt, "checkpoint directory (its newest complete step), a step or a run directory")
      ->required();
  app.add_option("--data-dir", o.data_dir, "task data (arc/, mmlu/, gsm8k/, humaneval/ as data_tools/fetch.sh writes)");
  app.add_option("--max-examples,--max-problems", o.max_examples, "the first N examples of each task (-1: all)")
      ->check(CLI::Range(int64_t(-1), INT64_MAX));
  // CORE (eval/core_eval.h): the DCLM bundle as data_tools/fetch.sh core writes it.
  std::string bundle = eval::kDefaultCoreBundle;
  eval::CoreOptions co;
  auto* bundle_opt = app.add_option("--bundle", bundle, "CORE: the eval bundle (core.yaml, eval_data/, eval_meta_data.csv)");
  auto* mpt_opt = app.add_option("--max-per-task", co.max_per_task,
                                 "CORE: the first N of each task's items after nanochat's seeded shuffle (-1: all; "
                                 "default: --max-examples)")
                      ->check(CLI::Range(int64_t(-1), INT64_MAX));
  app.add_option("--num-samples", o.num_samples, "generative tasks: samples per problem, pass@k")
      ->check(CLI::PositiveNumber);
  app.add_option("--temperature", o.temperature, "generative tasks: sampling temperature (0 = greedy)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--top-k", o.top_k, "generative tasks: top-k (0 = all tokens)")->check(CLI::NonNegativeNumber);
  app.add_option("--max-new-tokens", o.max_new_tokens, "generative tasks: tokens per completion")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch-size", o.batch_size, "examples per forward / generate call (0: 8; bpb: train.device_batch_size)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--seed", o.seed, "base seed of the per-problem sampling seeds");
  app.add_option("--device", device, "auto | cpu | cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--jobs", o.jobs, "HumanEval: sandboxes at once per rank (0: its share of the cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--timeout", o.sandbox.timeout_s, "HumanEval: wall-clock seconds per program")
      ->check(CLI::PositiveNumber);
  app.add_option("--dump-examples", o.dump_examples,
                 "multiple choice and CORE: one JSON line per example to this file (multiple choice: prompt ids, "
                 "letter ids, predicted letter; CORE: token ids, spans, losses, verdict), to check the logit "
                 "reading against another implementation");
  app.add_option("--oracle", oracle,
                 "self-check of the scorers: answer with the gold (must give 100 %) or a wrong answer (0 %) "
                 "instead of the model's; written apart to <ckpt>/eval/oracle-<gold|wrong>/, never counted as "
                 "the model's results (no ChatCORE, listed apart in report.md)")
      ->check(CLI::IsMember({"none", "gold", "wrong"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (task != "all" && task != "chatcore" && task != "report") split_tasks(task);  // validate before any work
  o.oracle = oracle == "gold" ? eval::Oracle::Gold : oracle == "wrong" ? eval::Oracle::Wrong : eval::Oracle::None;
  o.sandbox.cpu_seconds = static_cast<int64_t>(o.sandbox.timeout_s) + 1;
  const dist::Context& dc = dist::init(&argc, &argv);
  if (task == "report") {
    if (dc.rank == 0) printf("report %s\n", eval::write_report(ckpt).c_str());
    dist::finalize();
    return 0;
  }
  if (o.num_samples > 1 && o.temperature == 0)
    log::warn("[eval] --num-samples %lld with --temperature 0: greedy samples are identical, pass@k = pass@1",
              (long long)o.num_samples);

  if (mpt_opt->count() == 0) co.max_per_task = o.max_examples;
  co.dump_path = o.dump_examples;
  // --task all includes CORE for a base model when a bundle is there (the default path may be
  // absent: then it says so and goes on); --task core, or an explicit --bundle, must find one.
  std::optional<eval::CoreBundle> core_bundle;
  const bool core_asked = task != "all" && task != "chatcore" &&
                          std::ranges::count(split_tasks(task), std::string("core")) > 0;
  if (core_asked || (task == "all" && bundle_opt->count() > 0)) core_bundle = eval::load_core_bundle(bundle);
  else if (task == "all" && std::filesystem::is_directory(bundle)) core_bundle = eval::load_core_bundle(bundle);

  eval::EvalModel em = eval::load_eval_model(ckpt, device);
  if (dc.rank == 0)
    fprintf(stderr, "[eval] %s (step %lld) on %s x %d rank(s), data %s\n", em.m.dir.c_str(), (long long)em.m.step,
            em.device.str().c_str(), dc.world, o.data_dir.c_str());
  std::vector<std::string> names;
  if (task == "all") names.push_back("bpb");
  if (task == "all" && core_bundle) {
    const std::string stage = read_json_file(em.m.dir + "/meta.json").value("stage", std::string("pretrain"));
    if (stage == "pretrain") names.push_back("core");
    else if (dc.rank == 0) fprintf(stderr, "[eval] CORE is for base models: %s is a %s checkpoint\n", em.m.dir.c_str(), stage.c_str());
  } else if (task == "all" && dc.rank == 0) {
    fprintf(stderr, "[eval] no CORE bundle at %s (data_tools/fetch.sh core %s fetches it): CORE not run\n",
            bundle.c_str(), bundle.c_str());
  }
  if (task == "all" || task == "chatcore")
    for (const auto& t : eval::chat_tasks()) names.push_back(t.name);
  if (names.empty()) names = split_tasks(task);

  std::vector<eval::TaskResult> results;
  for (const auto& name : names) {
    results.push_back(name == "bpb"    ? eval::run_bpb(em, o)
                      : name == "core" ? eval::run_core(*core_bundle, em, o, co)
                                       : eval::run_task(eval::task_spec(name), em, o));
    const std::string path = eval::write_result(ckpt, results.back(), em, o);
    if (name == "core" && dc.rank == 0)  // nanochat's CSV beside the JSON
      write_text_file(path.substr(0, path.size() - 5) + ".csv", eval::core_csv(results.back()));
  }
  if ((task == "all" || task == "chatcore") && o.oracle != eval::Oracle::None) {
    if (dc.rank == 0) printf("chatcore       not computed: --oracle answers are not the model's\n");
  } else if (task == "all" || task == "chatcore") {
    if (auto c = eval::chatcore(results)) {
      eval::write_result(ckpt, *c, em, o);
      results.push_back(*c);
    }
  }
  // log.tensorboard in the checkpoint's config: the scores as scalars "eval/<task>" at the checkpoint's
  // step in <run.dir>/tb/eval/ (--task all starts that file afresh; single tasks append to it).
  // --oracle scores are the harness's self-check, not the model's: they stay out of TensorBoard.
  if (em.m.cfg.log.tensorboard && dc.rank == 0 && o.oracle == eval::Oracle::None) {
    std::vector<std::pair<std::string, double>> scores;
    for (const auto& r : results) scores.emplace_back("eval/" + r.task, r.score);
    train::TbWriter(em.m.cfg.run.dir + "/tb/eval", task == "all" ? -1 : INT64_MAX).scalars(em.m.step, scores);
  }
  if (task == "all" && dc.rank == 0) printf("report %s\n", eval::write_report(ckpt).c_str());
  dist::finalize();
  return 0;
}
}  // namespace

int main(int argc, char** argv) { return kiln::dist::guarded_main(eval_main, argc, argv); }
