// The CORE runner; see core_eval.h. Per task: nanochat's evaluated order (core_order), prompts
// (core_prompt.h), forwards over groups of examples, then the scores: mean continuation loss per
// option (MC/schema) or the greedy match (LM). Per-example results are summed over ranks into
// full-length tensors (each slot written by exactly one rank, so the sum is exact).
#include "eval/core_eval.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.h"
#include "core/json_file.h"
#include "core/log.h"
#include "dist/comm.h"
#include "dist/dist.h"
#include "eval/core_prompt.h"
#include "model/autocast.h"

namespace kiln::eval {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Options per item: its rows in the model (LM: one row).
int64_t row_count(const CoreTask& t, const CoreItem& it) {
  switch (t.type) {
    case CoreTaskType::MultipleChoice: return static_cast<int64_t>(it.choices.size());
    case CoreTaskType::Schema: return static_cast<int64_t>(it.context_options.size());
    case CoreTaskType::LanguageModeling: return 1;
  }
  return 1;
}

// The row an oracle peaks: the gold option (Oracle::Gold) or the next one (Oracle::Wrong).
int64_t oracle_row(const CoreTask& t, const CoreItem& it, Oracle o) {
  if (t.type == CoreTaskType::LanguageModeling) return 0;
  const int64_t n = row_count(t, it);
  return o == Oracle::Gold ? it.gold : (it.gold + 1) % n;
}

struct TaskRun {
  std::vector<int64_t> order;            // item indices in evaluated order
  std::vector<const CoreItem*> data;     // the same, as pointers
  std::vector<int64_t> row_offset;       // first slot of example i in `losses`
  int64_t num_fewshot = 0;               // after the --max-per-task clamp
  torch::Tensor losses, correct;         // (rows) mean continuation loss, (n) 0/1; float64, CPU
  int64_t cropped = 0;
};

// One forward over examples [b, e) of the task (prompts already made): fills their slots.
void score_pack(const CoreTask& task, TaskRun& run, const std::vector<CorePrompt>& prompts, int64_t first,
                EvalModel& em, Oracle oracle) {
  int64_t R = 0, T = 0;
  for (const auto& p : prompts)
    for (const auto& r : p.rows) ++R, T = std::max<int64_t>(T, r.size());
  auto ids = torch::full({R, T}, static_cast<int64_t>(em.m.tokenizer->bos_id()), torch::kInt64);
  auto acc = ids.accessor<int64_t, 2>();
  // Positions that predict a continuation token: row r, position p in [start - 1, end - 1).
  std::vector<int64_t> row_idx, pos_idx, target, seg_begin, peak;
  int64_t r = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const CorePrompt& p = prompts[i];
    const CoreItem& it = *run.data[first + i];
    for (size_t k = 0; k < p.rows.size(); ++k, ++r) {
      for (size_t j = 0; j < p.rows[k].size(); ++j) acc[r][j] = p.rows[k][j];
      seg_begin.push_back(static_cast<int64_t>(row_idx.size()));
      const bool peaked = oracle != Oracle::None && static_cast<int64_t>(k) == oracle_row(task, it, oracle);
      for (int64_t q = p.start[k] - 1; q < p.end[k] - 1; ++q) {
        row_idx.push_back(r), pos_idx.push_back(q), target.push_back(p.rows[k][q + 1]);
        peak.push_back(peaked ? target.back() : -1);
      }
      // The wrong oracle's language-modeling guess misses the continuation's last token.
      if (peaked && oracle == Oracle::Wrong && task.type == CoreTaskType::LanguageModeling && !peak.empty())
        peak.back() = (peak.back() + 1) % em.m.model->vocab_size();
    }
  }
  seg_begin.push_back(static_cast<int64_t>(row_idx.size()));
  const int64_t N = static_cast<int64_t>(row_idx.size());
  torch::Tensor sel;  // (N, V) logits at the scored positions
  if (oracle != Oracle::None) {
    // --oracle: no model; a logit of 20 on the peaked rows' true next token, 0 elsewhere.
    sel = torch::zeros({N, em.m.model->vocab_size()}, torch::kFloat32);
    for (int64_t n = 0; n < N; ++n)
      if (peak[n] >= 0) sel[n][peak[n]] = 20.0f;
  } else {
    torch::Tensor logits;
    {
      model::AutocastGuard ag(em.device, em.autocast);
      logits = em.m.model->forward(ids.to(em.device));
    }
    auto ri = torch::tensor(row_idx, torch::kInt64).to(em.device), pi = torch::tensor(pos_idx, torch::kInt64).to(em.device);
    sel = logits.index({ri, pi}).to(torch::kFloat32);
  }
  auto tgt = torch::tensor(target, torch::kInt64).to(sel.device());
  const auto tok_loss = torch::nn::functional::cross_entropy(
                            sel, tgt, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
                            .cpu();
  const auto hit = (sel.argmax(-1) == tgt).cpu();
  auto L = run.losses.accessor<double, 1>();
  auto C = run.correct.accessor<double, 1>();
  r = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int64_t ex = first + static_cast<int64_t>(i);
    std::vector<double> means;
    bool all_hit = true;
    for (size_t k = 0; k < prompts[i].rows.size(); ++k, ++r) {
      const int64_t b = seg_begin[r], e = seg_begin[r + 1];
      // torch's fp32 mean over the span, as nanochat's losses[i, si-1:ei-1].mean(); empty: NaN.
      means.push_back(e > b ? tok_loss.slice(0, b, e).mean().item<float>() : std::numeric_limits<double>::quiet_NaN());
      if (e > b) all_hit = all_hit && hit.slice(0, b, e).all().item<bool>();
      L[run.row_offset[ex] + k] = means.back();
    }
    const bool ok = task.type == CoreTaskType::LanguageModeling ? all_hit : core_argmin(means) == run.data[ex]->gold;
    C[ex] = ok ? 1.0 : 0.0;
  }
}

// Evaluates one task on this rank's groups, then sums the per-example tensors over ranks.
TaskRun run_task(const CoreTask& task, EvalModel& em, const EvalOptions& o, const CoreOptions& co, dist::Comm* comm) {
  TaskRun run;
  run.order = core_order(static_cast<int64_t>(task.items.size()), co.max_per_task);
  for (int64_t i : run.order) run.data.push_back(&task.items[i]);
  const int64_t n = static_cast<int64_t>(run.data.size());
  run.num_fewshot = task.num_fewshot;
  if (run.num_fewshot >= n) {  // only --max-per-task can get here (load_core_bundle checks the file)
    run.num_fewshot = n - 1;
    log::warn("[core] %s: --max-per-task %lld leaves %lld items, too few for %lld-shot prompts: using %lld-shot "
              "(nanochat crashes here, its issue #550)",
              task.label.c_str(), (long long)co.max_per_task, (long long)n, (long long)task.num_fewshot,
              (long long)run.num_fewshot);
  }
  int64_t rows = 0;
  for (const auto* it : run.data) run.row_offset.push_back(rows), rows += row_count(task, *it);
  run.losses = torch::zeros({rows}, torch::kFloat64);
  run.correct = torch::zeros({n}, torch::kFloat64);
  const int64_t G = o.batch_size > 0 ? o.batch_size : 8;
  const int64_t budget = G * std::max<int64_t>(1, em.m.cfg.model.seq_len);  // padded tokens per forward
  const int64_t max_len = em.m.model->max_positions();
  const auto& dc = dist::ctx();
  Progress prog(task.label, n);
  int64_t done = 0;
  torch::NoGradGuard no_grad;
  for (int64_t g = dc.rank; g * G < n; g += dc.world) {
    const int64_t b = g * G, e = std::min(n, b + G);
    std::vector<CorePrompt> pack;
    int64_t pack_first = b, pack_rows = 0, pack_T = 0;
    for (int64_t i = b; i < e; ++i) {
      CorePrompt p = prepare_core_prompt(task, run.data, i, run.num_fewshot, *em.m.tokenizer, max_len);
      run.cropped += p.cropped;
      int64_t T = pack_T;
      for (const auto& row : p.rows) T = std::max<int64_t>(T, row.size());
      const int64_t R = pack_rows + static_cast<int64_t>(p.rows.size());
      if (!pack.empty() && R * T > budget) {  // this example would overflow the forward: flush first
        score_pack(task, run, pack, pack_first, em, o.oracle);
        pack.clear(), pack_first = i, pack_rows = 0, pack_T = 0;
        T = 0;
        for (const auto& row : p.rows) T = std::max<int64_t>(T, row.size());
      }
      pack_rows += static_cast<int64_t>(p.rows.size()), pack_T = T;
      pack.push_back(std::move(p));
    }
    if (!pack.empty()) score_pack(task, run, pack, pack_first, em, o.oracle);
    done += e - b;
    prog.update(done, static_cast<int64_t>(run.correct.sum().item<double>()));
  }
  if (comm) {
    comm->all_reduce(run.losses, dist::ReduceOp::Sum);
    comm->all_reduce(run.correct, dist::ReduceOp::Sum);
    run.cropped = dist::all_reduce_sum(run.cropped);
  }
  return run;
}

// One JSONL line per example of a task (rank 0; prompts made again, so any rank count dumps the same).
void dump_task(std::string& out, const CoreTask& task, const TaskRun& run, EvalModel& em) {
  const int64_t max_len = em.m.model->max_positions();
  auto L = run.losses.accessor<double, 1>();
  for (size_t i = 0; i < run.data.size(); ++i) {
    const CorePrompt p =
        prepare_core_prompt(task, run.data, static_cast<int64_t>(i), run.num_fewshot, *em.m.tokenizer, max_len);
    std::vector<double> losses;
    for (size_t k = 0; k < p.rows.size(); ++k) losses.push_back(L[run.row_offset[i] + k]);
    nlohmann::ordered_json j = {{"task", task.label},      {"index", i},         {"line", run.data[i]->line},
                                {"fewshot", p.fewshot},    {"rows", p.rows},     {"start", p.start},
                                {"end", p.end},            {"losses", losses},   {"correct", run.correct[i].item<double>() > 0}};
    if (task.type != CoreTaskType::LanguageModeling) j["pred"] = core_argmin(losses);
    out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
}

}  // namespace

double core_centered(double accuracy, double baseline_percent) {
  return (accuracy - 0.01 * baseline_percent) / (1.0 - 0.01 * baseline_percent);
}

int64_t core_argmin(const std::vector<double>& v) {
  int64_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] < v[best]) best = static_cast<int64_t>(i);
  return best;
}

TaskResult run_core(const CoreBundle& bundle, EvalModel& em, const EvalOptions& o, const CoreOptions& co) {
  const double t0 = now_s();
  const auto& dc = dist::ctx();
  std::unique_ptr<dist::Comm> comm;
  if (dc.world > 1) comm = dist::make_comm("mpi", torch::kCPU, 600);
  TaskResult r;
  r.task = "core";
  nlohmann::ordered_json tasks = nlohmann::ordered_json::array(), results, centered;
  std::string dump;
  double sum_centered = 0;
  for (const auto& task : bundle.tasks) {
    const double t1 = now_s();
    TaskRun run = run_task(task, em, o, co, comm.get());
    const int64_t n = static_cast<int64_t>(run.data.size());
    const int64_t correct = static_cast<int64_t>(run.correct.sum().item<double>());
    const double acc = n ? double(correct) / n : 0.0, c = core_centered(acc, task.random_baseline);
    const double secs = now_s() - t1;
    sum_centered += c;
    r.correct += correct, r.total += n;
    results[task.label] = acc, centered[task.label] = c;
    tasks.push_back({{"label", task.label},
                     {"type", core_task_type_name(task.type)},
                     {"num_fewshot", run.num_fewshot},
                     {"examples", n},
                     {"correct", correct},
                     {"accuracy", acc},
                     {"random_baseline", task.random_baseline},
                     {"centered", c},
                     {"cropped_rows", run.cropped},
                     {"seconds", secs}});
    if (dc.rank == 0) {
      printf("core  %-34s %2lld-shot %-17s accuracy %.4f  centered %+.4f  (%lld/%lld, %.1f s)\n", task.label.c_str(),
             (long long)run.num_fewshot, core_task_type_name(task.type), acc, c, (long long)correct, (long long)n, secs);
      fflush(stdout);
      if (!co.dump_path.empty()) dump_task(dump, task, run, em);
    }
  }
  r.score = sum_centered / static_cast<double>(bundle.tasks.size());
  r.extra["bundle"] = bundle.dir;
  r.extra["max_per_task"] = co.max_per_task;
  r.extra["results"] = results;
  r.extra["centered_results"] = centered;
  r.extra["tasks"] = tasks;
  if (dc.rank == 0 && !co.dump_path.empty()) write_text_file(co.dump_path, dump);
  r.seconds = now_s() - t0;
  return r;
}

std::string core_csv(const TaskResult& core) {
  std::string s;
  char buf[512];
  snprintf(buf, sizeof(buf), "%-35s, %-10s, %-10s\n", "Task", "Accuracy", "Centered");
  s += buf;
  for (const auto& t : core.extra.at("tasks")) {
    snprintf(buf, sizeof(buf), "%-35s, %-10.6f, %-10.6f\n", t.at("label").get<std::string>().c_str(),
             t.at("accuracy").get<double>(), t.at("centered").get<double>());
    s += buf;
  }
  snprintf(buf, sizeof(buf), "%-35s, %-10s, %-10.6f\n", "CORE", "", core.score);
  return s + buf;
}

}  // namespace kiln::eval
