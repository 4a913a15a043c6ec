// The report card; see report.h. Stages are read back through meta.json's lineage ("parent" step
// dirs, found and verified by report_lineage.h), results through <dir>/eval/*.json files that name
// the stage's meta.json by its sha256 (older ones by path); --oracle self-checks are shown apart.
#include "eval/report.h"

#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/config.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/log.h"
#include "eval/plot.h"
#include "eval/report_lineage.h"
#include "eval/runner.h"
#include "eval/tasks.h"
#include "model/gpt.h"
#include "core/sha256.h"
#include "tokenizer/tokenizer.h"
#include "ckpt/checkpoint.h"
#include "core/format.h"

namespace kiln::eval {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

struct Stage {
  std::string name, step_dir, run_dir, train_cwd, meta_sha256;
  int64_t step = 0, total_steps = 0;
  Config cfg;
  json meta;
  std::vector<json> metrics;
  std::map<std::string, json> evals;   // task -> the model's result
  std::map<std::string, json> oracle;  // "task (--oracle gold)" -> a scorer self-check, shown apart
};

json read_json(const fs::path& p) {
  std::ifstream in(p);
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) throw Error("[report] " + p.string() + " is not valid JSON");
  return j;
}

std::string canon(const std::string& p) {
  std::error_code ec;
  auto c = fs::weakly_canonical(p, ec);
  return ec ? p : c.string();
}

// Is result r (an <dir>/eval/*.json) about stage s? Results name their checkpoint by the sha256
// of its meta.json; older files only by path (resolved from here, as they were written).
bool is_about(const json& r, const Stage& s) {
  if (!r.is_object() || !r.contains("task") || !r["task"].is_string()) return false;
  if (r.contains("meta_sha256") && r["meta_sha256"].is_string()) return r["meta_sha256"].get<std::string>() == s.meta_sha256;
  return r.contains("checkpoint") && r["checkpoint"].is_string() && canon(r["checkpoint"].get<std::string>()) == canon(s.step_dir);
}

Stage read_stage(const std::string& step_dir, const std::string& ckpt_arg) {
  Stage s;
  s.step_dir = step_dir;
  const std::string meta_path = (fs::path(step_dir) / "meta.json").string(), bytes = read_text_file(meta_path);
  s.meta_sha256 = sha256_hex(bytes);
  s.meta = json::parse(bytes, nullptr, false);
  if (!s.meta.is_object() || !s.meta.contains("config") || !s.meta["config"].is_string())
    throw Error("[report] " + meta_path + " is not a checkpoint's meta.json (no \"config\")");
  s.cfg = load_config_text(s.meta.at("config").get<std::string>(), meta_path);
  s.name = s.meta.value("stage", std::string("pretrain"));
  s.step = s.meta.value("step", int64_t(0));
  s.total_steps = s.meta.value("total_steps", int64_t(0));
  const fs::path ckpt_dir = fs::path(step_dir).parent_path();
  // run.dir was written relative to where training ran, not to where the report runs.
  s.train_cwd = training_cwd(step_dir, s.cfg);
  s.run_dir = ckpt_dir.parent_path().string();
  for (const auto& c : recorded_path_candidates(s.cfg.run.dir, s.train_cwd))
    if (fs::path(c).is_absolute() && fs::is_directory(c)) { s.run_dir = c; break; }
  std::ifstream in(fs::path(s.run_dir) / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line, nullptr, false);
    if (j.is_object()) s.metrics.push_back(std::move(j));
  }
  std::set<std::string> dirs;
  for (const auto& d : {ckpt_dir, fs::path(s.run_dir), fs::path(step_dir), fs::path(ckpt_arg)})
    dirs.insert(canon((d / "eval").string()));
  for (const auto& d : dirs) {
    if (!fs::is_directory(d)) continue;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(d)) {
      if (e.path().extension() == ".json") files.push_back(e.path());
      if (e.is_directory() && e.path().filename().string().rfind("oracle-", 0) == 0)  // --oracle self-checks
        for (const auto& o : fs::directory_iterator(e.path()))
          if (o.path().extension() == ".json") files.push_back(o.path());
    }
    for (const auto& f : files) {
      json r = read_json(f);
      if (!is_about(r, s)) continue;
      const std::string oracle = r.contains("oracle") && r["oracle"].is_string() ? r["oracle"].get<std::string>() : "none";
      if (oracle == "none") s.evals[r["task"].get<std::string>()] = r;
      else s.oracle[r["task"].get<std::string>() + " (--oracle " + oracle + ")"] = r;  // never a model score
    }
  }
  return s;
}

// A stage's bpb result counts only when it follows the definition of the stage's Trainer val bpb
// (older files of chat stages scored packed windows of every token: another number).
const json* bpb_of(const Stage& s) {
  auto it = s.evals.find("bpb");
  if (it == s.evals.end()) return nullptr;
  const std::string def = it->second.value("definition", std::string(s.name == "pretrain" ? bpb_definition("pretrain") : ""));
  return def == bpb_definition(s.name) ? &it->second : nullptr;
}

std::string fmt(double v, int prec = 4) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(prec);
  o << v;
  return o.str();
}

const json* last_with(const std::vector<json>& m, const char* key) {
  for (auto it = m.rbegin(); it != m.rend(); ++it)
    if (it->contains(key) && (*it)[key].is_number()) return &*it;
  return nullptr;
}

// ./rl's figures (issue 25): reward, sample length and tool-call rate per step, pass@1 / pass@k on
// the held-out questions, one plot of reward and pass@k over steps.
void rl_block(std::ostringstream& o, const Stage& s, const std::string& report_dir) {
  std::vector<double> rx, ry, px, p1, pk;
  for (const auto& m : s.metrics) {
    if (m.contains("reward")) rx.push_back(m["step"].get<double>()), ry.push_back(m["reward"].get<double>());
    if (m.contains("pass@k"))
      px.push_back(m["step"].get<double>()), p1.push_back(m["pass@1"].get<double>()), pk.push_back(m["pass@k"].get<double>());
  }
  const json* lr = last_with(s.metrics, "reward");
  if (!lr) return;
  const RlConfig& r = s.cfg.rl;
  o << "- RL (" << r.reward << " reward on `" << r.train << "`, " << r.examples_per_step << " questions x " << r.num_samples
    << " samples per step, temperature " << r.temperature << ", top-k " << r.top_k << "): final reward mean "
    << fmt((*lr)["reward"].get<double>()) << ", sample length " << fmt(lr->value("sample_len", 0.0)) << " tokens, tool-call rate "
    << fmt(lr->value("tool_rate", 0.0)) << " (step " << lr->value("step", int64_t(0)) << ")";
  if (const json* lp = last_with(s.metrics, "pass@k"))
    o << "; held-out `" << r.val << "`: pass@1 " << fmt((*lp)["pass@1"].get<double>()) << ", pass@" << lp->value("k", int64_t(0))
      << " " << fmt((*lp)["pass@k"].get<double>()) << " on " << lp->value("eval_questions", int64_t(0))
      << " questions; GSM8K rows skipped (no parsable answer, or longer than the context): train " << lp->value("train_rows_skipped", int64_t(0))
      << ", held-out " << lp->value("val_rows_skipped", int64_t(0));
  o << "\n\n";
  const std::string png = "rl_" + s.name + ".png";
  plot_png((fs::path(report_dir) / png).string(),
           {{rx, ry, 0x1f77b4, false}, {px, p1, 0xff7f0e, true}, {px, pk, 0x2ca02c, true}});
  o << "![" << s.name << " reward](" << png << ")\n\n*x: step; y: blue line: reward mean of the step's samples, "
    << "orange dots: pass@1, green dots: pass@k on the held-out questions (from " << s.run_dir << "/metrics.jsonl)*\n\n";
}

std::string stage_section(const Stage& s, const std::string& report_dir) {
  const Config& c = s.cfg;
  std::ostringstream o;
  o << "## " << s.name << " — `" << s.step_dir << "`\n\n";
  int64_t params = 0;
  try {
    auto tok = tok::Tokenizer::load(s.step_dir + "/tokenizer.json");
    params = model::make_model(c.model, tok.vocab_size(), 0, torch::kMeta)->num_params();
    o << "- model: depth " << c.model.depth << ", width " << c.model.width << ", heads " << c.model.n_head
      << ", context " << c.model.seq_len << ", vocab " << tok.vocab_size() << ", " << params << " parameters\n";
  } catch (const std::exception& e) {
    o << "- model: depth " << c.model.depth << " (tokenizer unreadable: " << e.what() << ")\n";
  }
  o << "- data: train `" << describe_sources(c.data.train) << "`, val `" << describe_sources(c.data.val) << "`, tokenizer `" << c.data.tokenizer << "`\n";
  o << "- schedule: " << s.step << " of " << s.total_steps << " steps of " << c.train.total_batch_size
    << " tokens (device batch " << c.train.device_batch_size << "); lr matrix " << c.optim.matrix_lr << ", embedding "
    << c.optim.embedding_lr << ", unembedding " << c.optim.unembedding_lr << ", warmdown " << c.optim.warmdown_ratio
    << "; seed " << c.run.seed << "\n";
  double secs = 0;
  int64_t timed = 0;
  std::vector<double> lx, ly, vx, vy, cx, cy;
  for (const auto& m : s.metrics) {
    if (m.contains("core") && m["core"].is_number()) cx.push_back(m["step"].get<double>()), cy.push_back(m["core"].get<double>());
    if (m.contains("dt_ms")) secs += m["dt_ms"].get<double>() / 1000.0, ++timed;
    if (m.contains("loss")) lx.push_back(m["step"].get<double>()), ly.push_back(m["loss"].get<double>());
    if (m.contains("val_loss")) vx.push_back(m["step"].get<double>()), vy.push_back(m["val_loss"].get<double>());
  }
  const json* lt = last_with(s.metrics, "loss");
  const json* lv = last_with(s.metrics, "val_bpb");
  o << "- training: " << format_duration(secs) << " over " << timed << " logged steps";
  if (lt) o << ", " << lt->value("tokens", int64_t(0)) << " tokens, final train loss " << fmt((*lt)["loss"].get<double>());
  if (lv) o << ", final val loss " << fmt((*lv)["val_loss"].get<double>()) << " nats/token, val bpb " << fmt((*lv)["val_bpb"].get<double>())
           << " (step " << lv->value("step", int64_t(0)) << ")";
  o << "\n- bpb (here and in the summary): " << bpb_definition(s.name) << "\n\n";
  if (!lx.empty() || !vx.empty()) {
    const std::string png = "loss_" + s.name + ".png";
    plot_png((fs::path(report_dir) / png).string(),
             {{lx, ly, 0x1f77b4, false}, {vx, vy, 0xff7f0e, true}});
    o << "![" << s.name << " loss](" << png << ")\n\n*x: step; y: nats/token — blue line: train loss, "
      << "orange dots: validation loss (from " << s.run_dir << "/metrics.jsonl)*\n\n";
  } else {
    o << "(no metrics.jsonl at " << s.run_dir << ")\n\n";
  }
  rl_block(o, s, report_dir);
  if (const json* lc = last_with(s.metrics, "core")) {
    o << "- CORE during training (eval.core_every " << c.eval.core_every << ", at most " << c.eval.core_max_per_task
      << " items per task, bundle `" << c.eval.core_bundle << "`): " << fmt((*lc)["core"].get<double>()) << " at step "
      << lc->value("step", int64_t(0)) << "\n\n";
    if (cx.size() >= 2) {
      const std::string png = "core_" + s.name + ".png";
      plot_png((fs::path(report_dir) / png).string(), {{cx, cy, 0x2ca02c, false}, {cx, cy, 0x2ca02c, true}});
      o << "![" << s.name << " CORE](" << png << ")\n\n*x: step; y: CORE (mean centred accuracy) during training "
        << "(from " << s.run_dir << "/metrics.jsonl)*\n\n";
    }
  }
  auto table = [&](const std::map<std::string, json>& evals) {
    o << "| task | score | correct / total | settings |\n|---|---|---|---|\n";
    for (const auto& [task, r] : evals) {
      o << "| " << task << " | " << fmt(r.value("score", 0.0)) << " | ";
      if (task == "bpb" || task == "chatcore") o << "- | ";
      else o << r.value("correct", int64_t(0)) << " / " << r.value("total", int64_t(0)) << " | ";
      o << "max " << r.value("max_examples", int64_t(-1)) << " ex, " << r.value("world", 1) << " rank(s)";
      if (r.contains("metric")) o << ", " << r["metric"].get<std::string>() << " T=" << r.value("temperature", 0.0);
      if (task == "bpb" && &r != bpb_of(s)) o << ", **another definition: " << r.value("definition", std::string("packed windows, every token")) << "; not shown in the summary**";
      o << " |\n";
    }
    o << "\n";
  };
  if (!s.evals.empty()) table(s.evals);
  if (!s.oracle.empty()) {
    o << "Scorer self-checks (`./eval --oracle`): the gold or a wrong answer was scored instead of the model's. "
      << "They test the scorers, are not this model's results, and count nowhere (summary, ChatCORE).\n\n";
    table(s.oracle);
  }
  return o.str();
}

}  // namespace

std::string write_report(const std::string& ckpt) {
  std::vector<Stage> stages;
  std::string dir = ckpt::find_latest_checkpoint(ckpt), lineage_note;
  std::set<std::string> seen;
  while (!dir.empty() && seen.insert(canon(dir)).second) {
    stages.insert(stages.begin(), read_stage(dir, stages.empty() ? ckpt : dir));
    const Stage& s = stages.front();
    const json& lin = s.meta.contains("lineage") ? s.meta["lineage"] : json();
    ParentLookup p = find_parent(lin, s.step_dir, s.train_cwd);  // throws on a replaced parent
    if (!p.note.empty()) {
      lineage_note = p.note;
      log::warn("[report] %s", p.note.c_str());
    }
    dir = p.step_dir;
  }
  const Stage& last = stages.back();
  const std::string report_dir = last.run_dir, path = (fs::path(report_dir) / "report.md").string();
  char when[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  std::ostringstream o;
  o << "# kiln report card\n\nGenerated " << when << " for `" << last.step_dir << "` (stage " << last.name << ", step "
    << last.step << ").\n\n";
  if (!lineage_note.empty()) o << "**Lineage incomplete:** " << lineage_note << ".\n\n";
  o << "## Summary\n\n| metric |";
  for (const auto& s : stages) o << " " << s.name << " |";
  o << "\n|---|";
  for (size_t i = 0; i < stages.size(); ++i) o << "---|";
  o << "\n";
  std::vector<std::string> rows = {"bpb", "core"};
  for (const auto& t : chat_tasks()) rows.push_back(t.name);
  rows.push_back("chatcore");
  for (const auto& row : rows) {
    o << "| " << row << " |";
    for (const auto& s : stages) {
      auto it = s.evals.find(row);
      const json* r = row == "bpb" ? bpb_of(s) : it == s.evals.end() ? nullptr : &it->second;
      const json* tc = row == "core" && !r ? last_with(s.metrics, "core") : nullptr;  // CORE logged in training
      if (tc) o << " " << fmt((*tc)["core"].get<double>()) << " (training, step " << tc->value("step", int64_t(0)) << ") |";
      else o << " " << (r ? fmt(r->value("score", 0.0)) : "-") << " |";
    }
    o << "\n";
  }
  o << "\nbpb: ./eval --task bpb by the definition of the stage's Trainer val bpb (pretrain: every token of the "
       "validation windows; chat stages: only the trained targets of the validation conversations). core: ./eval --task "
       "core, else the last CORE logged during training (eval.core_every, on at most eval.core_max_per_task items per "
       "task). Scores are the "
       "model's own; `--oracle` self-checks are listed apart under each stage and count nowhere.\n\n";
  for (const auto& s : stages) o << stage_section(s, report_dir);
  std::ofstream out(path);
  out << o.str();
  if (!out) throw Error("[report] cannot write " + path, "is " + report_dir + " writable?");
  return path;
}

}  // namespace kiln::eval
