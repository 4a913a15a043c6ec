// Result files and lines; see results.h.
#include "eval/results.h"

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "dist/dist.h"

namespace kiln::eval {

std::string result_line(const TaskResult& r) {
  char buf[256];
  if (r.task == "bpb")
    snprintf(buf, sizeof(buf), "%-14s bpb %.6f  windows %lld  (%.1f s)", r.task.c_str(), r.score, (long long)r.total,
             r.seconds);
  else if (r.task == "core")
    snprintf(buf, sizeof(buf), "%-14s %.6f  (CORE: mean centered accuracy of %zu tasks, %lld examples, %.1f s)",
             r.task.c_str(), r.score, r.extra.contains("tasks") ? r.extra["tasks"].size() : size_t(0),
             (long long)r.total, r.seconds);
  else if (r.task == "chatcore")
    snprintf(buf, sizeof(buf), "%-14s %.6f  (mean centered accuracy of 5 tasks)", r.task.c_str(), r.score);
  else
    snprintf(buf, sizeof(buf), "%-14s accuracy %.6f  correct %lld/%lld  (%.1f s)", r.task.c_str(), r.score,
             (long long)r.correct, (long long)r.total, r.seconds);
  return buf;
}

std::string write_result(const std::string& out_dir, const TaskResult& r, const EvalModel& em, const EvalOptions& o) {
  namespace fs = std::filesystem;
  static const char* oracle_names[] = {"none", "gold", "wrong"};
  const std::string oracle = oracle_names[static_cast<int>(o.oracle)];
  // A scorer self-check (--oracle) is not the model's result: it goes to a folder of its own,
  // never over <dir>/eval/<task>.json, which the report card and ChatCORE read.
  const fs::path dir = o.oracle == Oracle::None ? fs::path(out_dir) / "eval" : fs::path(out_dir) / "eval" / ("oracle-" + oracle);
  const fs::path path = dir / (r.task + ".json");
  if (dist::ctx().rank != 0) return path.string();
  char when[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  nlohmann::ordered_json j = {{"task", r.task},
                              {"score", r.score},
                              {"correct", r.correct},
                              {"total", r.total},
                              {"checkpoint", em.m.dir},
                              {"meta_sha256", em.meta_sha256},
                              {"step", em.m.step},
                              {"world", dist::ctx().world},
                              {"device", em.device.str()},
                              {"max_examples", o.max_examples},
                              {"num_samples", o.num_samples},
                              {"temperature", o.temperature},
                              {"top_k", o.top_k},
                              {"max_new_tokens", o.max_new_tokens},
                              {"batch_size", o.batch_size},
                              {"seed", o.seed},
                              {"oracle", oracle},
                              {"seconds", r.seconds},
                              {"created", when}};
  for (auto it = r.extra.begin(); it != r.extra.end(); ++it) j[it.key()] = it.value();
  std::error_code ec;
  fs::create_directories(dir, ec);
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out) throw Error("[eval] cannot write " + tmp.string(), "is " + dir.string() + " writable?");
  }
  fs::rename(tmp, path);
  if (o.oracle == Oracle::None) printf("%s\n", result_line(r).c_str());
  else printf("%s  [--oracle %s: the scorer's self-check, not the model's; %s]\n", result_line(r).c_str(), oracle.c_str(),
              path.c_str());
  fflush(stdout);
  return path.string();
}

std::optional<TaskResult> chatcore(const std::vector<TaskResult>& results) {
  TaskResult c;
  c.task = "chatcore";
  double sum = 0;
  for (const auto& t : chat_tasks()) {
    const TaskResult* found = nullptr;
    for (const auto& r : results)
      if (r.task == t.name) found = &r;
    if (!found) return std::nullopt;
    const double centered = centered_accuracy(found->score, t.baseline);
    c.extra["centered"][t.name] = centered;
    sum += centered;
    c.seconds += found->seconds;
  }
  c.score = sum / chat_tasks().size();
  return c;
}

}  // namespace kiln::eval
