// Generative tasks (GSM8K, HumanEval) as nanochat's chat_eval: the engine writes k completions
// per problem (calculator live), each is scored (the "#### " answer, or the program run in the
// sandbox), and a problem counts when any of its k passes (pass@k). Seeds are per (problem,
// sample), so a completion is the same whatever rank or batch it falls in.
#include <algorithm>
#include <cstdio>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "dist/dist.h"
#include "engine/generator.h"
#include "eval/runner.h"
#include "model/autocast.h"

namespace kiln::eval {
namespace {

uint64_t sample_seed(uint64_t base, int64_t example, int64_t sample) {
  return base * 1000003ULL + static_cast<uint64_t>(example) * 1009ULL + static_cast<uint64_t>(sample);
}

}  // namespace

TaskResult run_generative(const TaskSpec& t, const std::vector<data::TaskExample>& exs, EvalModel& em,
                          const EvalOptions& o) {
  const bool humaneval = t.kind == data::TaskKind::HumanEval;
  if (t.kind != data::TaskKind::Gsm8k && !humaneval) throw Error("[eval] " + t.name + " is not a generative task");
  if (o.num_samples < 1) throw Error("[eval] --num-samples " + std::to_string(o.num_samples) + " must be >= 1");
  const int64_t n = static_cast<int64_t>(exs.size()), B = o.batch_size > 0 ? o.batch_size : 8, k = o.num_samples;
  const auto& dc = dist::ctx();
  const int jobs = o.jobs > 0 ? o.jobs
                              : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, dc.local_world));
  std::unique_ptr<engine::Generator> gen;
  if (o.oracle == Oracle::None) gen = std::make_unique<engine::Generator>(em.m.model, em.m.tokenizer);
  const tok::Tokenizer& tok = *em.m.tokenizer;

  int64_t correct = 0, done = 0, samples_passed = 0, sandbox_errors = 0, timeouts = 0, gen_tokens = 0;
  Progress prog(t.name, n);
  for (auto [b, e] : rank_batches(n, B)) {
    // Completions, k per problem, row = (i - b) * k + s.
    std::vector<std::string> completions;
    if (gen) {
      std::vector<std::vector<int64_t>> prompts;
      std::vector<engine::SamplingOptions> opts;
      for (int64_t i = b; i < e; ++i) {
        auto ids = tok::render_for_completion(tok, exs[i].conv);
        for (int64_t s = 0; s < k; ++s) {
          prompts.emplace_back(ids.begin(), ids.end());
          engine::SamplingOptions so;
          so.max_new_tokens = o.max_new_tokens;
          so.temperature = o.temperature;
          so.top_k = o.top_k;
          so.seed = sample_seed(o.seed, i, s);
          so.tools = true;  // the calculator is live, as in nanochat's GSM8K evaluation
          opts.push_back(so);
        }
      }
      std::vector<engine::GenResult> res;
      {
        torch::NoGradGuard no_grad;
        model::AutocastGuard ag(em.device, em.autocast);
        res = gen->generate(prompts, opts);
      }
      for (const auto& r : res) {
        gen_tokens += static_cast<int64_t>(r.ids.size());
        completions.push_back(tok.decode(std::vector<uint32_t>(r.ids.begin(), r.ids.end())));
      }
    } else {
      for (int64_t i = b; i < e; ++i)
        for (int64_t s = 0; s < k; ++s) completions.push_back(oracle_answer(t, exs[i], o.oracle));
    }
    std::vector<uint8_t> pass(completions.size(), 0);
    if (humaneval) {
      std::vector<std::string> programs;
      for (size_t r = 0; r < completions.size(); ++r) programs.push_back(humaneval_program(completions[r], exs[b + r / k]));
      // nanochat's rules: its guard runs first; a pass is check() returning (Note [Pass verdict]).
      // An infrastructure error is retried and, if it persists, stops the evaluation (throws).
      SandboxLimits lim = o.sandbox;
      lim.prelude = nanochat_guard(lim.memory_bytes);
      auto results = run_sandbox_batch(programs, lim, jobs);
      for (size_t r = 0; r < results.size(); ++r) {
        pass[r] = results[r].passed();
        sandbox_errors += results[r].attempts - 1;
        timeouts += results[r].status == SandboxStatus::TimedOut;
      }
    } else {
      for (size_t r = 0; r < completions.size(); ++r) pass[r] = score_gsm8k(completions[r], exs[b + r / k]);
    }
    for (int64_t i = b; i < e; ++i) {
      bool any = false;
      for (int64_t s = 0; s < k; ++s) {
        any = any || pass[(i - b) * k + s];
        samples_passed += pass[(i - b) * k + s];
      }
      correct += any;
    }
    done += e - b;
    prog.update(done, correct);
  }
  TaskResult r = summed_result(t.name, correct, done);
  r.extra["metric"] = "pass@" + std::to_string(k);
  r.extra["samples_passed"] = dist::all_reduce_sum(samples_passed);
  r.extra["generated_tokens"] = dist::all_reduce_sum(gen_tokens);
  if (humaneval) {
    r.extra["sandbox"] = sandbox_isolation();
    // Runs that failed for infrastructure reasons and were run again (never scored as failures).
    const int64_t errors = dist::all_reduce_sum(sandbox_errors);
    r.extra["sandbox_errors"] = errors;
    r.extra["sandbox_timeouts"] = dist::all_reduce_sum(timeouts);
    if (dc.rank == 0)
      fprintf(stderr, "[eval] %s: sandbox errors %lld (each run again; none scored), timeouts %lld\n", t.name.c_str(),
              (long long)errors, (long long)r.extra["sandbox_timeouts"].get<int64_t>());
  }
  return r;
}

}  // namespace kiln::eval
