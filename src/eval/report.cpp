// The report card; see report.h. Stages are read back through meta.json's lineage ("parent" step
// dirs), results through <dir>/eval/*.json files whose "checkpoint" is the stage's step dir.
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
#include "eval/plot.h"
#include "eval/tasks.h"
#include "model/gpt.h"
#include "tokenizer/tokenizer.h"
#include "ckpt/checkpoint.h"
#include "core/format.h"

namespace kiln::eval {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

struct Stage {
  std::string name, step_dir, run_dir;
  int64_t step = 0, total_steps = 0;
  Config cfg;
  json meta;
  std::vector<json> metrics;
  std::map<std::string, json> evals;  // task -> result
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

Stage read_stage(const std::string& step_dir, const std::string& ckpt_arg) {
  Stage s;
  s.step_dir = step_dir;
  s.meta = read_json(fs::path(step_dir) / "meta.json");
  s.cfg = load_config_text(s.meta.at("config").get<std::string>(), step_dir + "/meta.json");
  s.name = s.meta.value("stage", std::string("pretrain"));
  s.step = s.meta.value("step", int64_t(0));
  s.total_steps = s.meta.value("total_steps", int64_t(0));
  const fs::path ckpt_dir = fs::path(step_dir).parent_path();
  s.run_dir = fs::is_directory(s.cfg.run.dir) ? s.cfg.run.dir : ckpt_dir.parent_path().string();
  std::ifstream in(fs::path(s.run_dir) / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line, nullptr, false);
    if (j.is_object()) s.metrics.push_back(std::move(j));
  }
  std::set<std::string> dirs;
  for (const auto& d : {ckpt_dir, fs::path(s.run_dir), fs::path(step_dir), fs::path(ckpt_arg)})
    dirs.insert(canon((d / "eval").string()));
  const std::string me = canon(step_dir);
  for (const auto& d : dirs) {
    if (!fs::is_directory(d)) continue;
    for (const auto& e : fs::directory_iterator(d)) {
      if (e.path().extension() != ".json") continue;
      json r = read_json(e.path());
      if (r.is_object() && r.contains("task") && canon(r.value("checkpoint", std::string())) == me)
        s.evals[r["task"].get<std::string>()] = r;
    }
  }
  return s;
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
  std::vector<double> lx, ly, vx, vy;
  for (const auto& m : s.metrics) {
    if (m.contains("dt_ms")) secs += m["dt_ms"].get<double>() / 1000.0, ++timed;
    if (m.contains("loss")) lx.push_back(m["step"].get<double>()), ly.push_back(m["loss"].get<double>());
    if (m.contains("val_loss")) vx.push_back(m["step"].get<double>()), vy.push_back(m["val_loss"].get<double>());
  }
  const json* lt = last_with(s.metrics, "loss");
  const json* lv = last_with(s.metrics, "val_bpb");
  o << "- training: " << format_duration(secs) << " over " << timed << " logged steps";
  if (lt) o << ", " << lt->value("tokens", int64_t(0)) << " tokens, final train loss " << fmt((*lt)["loss"].get<double>());
  if (lv) o << ", final val loss " << fmt((*lv)["val_loss"].get<double>()) << " nats/token, val bpb " << fmt((*lv)["val_bpb"].get<double>());
  o << "\n\n";
  if (!lx.empty() || !vx.empty()) {
    const std::string png = "loss_" + s.name + ".png";
    plot_png((fs::path(report_dir) / png).string(),
             {{lx, ly, 0x1f77b4, false}, {vx, vy, 0xff7f0e, true}});
    o << "![" << s.name << " loss](" << png << ")\n\n*x: step; y: nats/token — blue line: train loss, "
      << "orange dots: validation loss (from " << s.run_dir << "/metrics.jsonl)*\n\n";
  } else {
    o << "(no metrics.jsonl at " << s.run_dir << ")\n\n";
  }
  if (!s.evals.empty()) {
    o << "| task | score | correct / total | settings |\n|---|---|---|---|\n";
    for (const auto& [task, r] : s.evals) {
      o << "| " << task << " | " << fmt(r.value("score", 0.0)) << " | ";
      if (task == "bpb" || task == "chatcore") o << "- | ";
      else o << r.value("correct", int64_t(0)) << " / " << r.value("total", int64_t(0)) << " | ";
      o << "max " << r.value("max_examples", int64_t(-1)) << " ex, " << r.value("world", 1) << " rank(s)";
      if (r.contains("metric")) o << ", " << r["metric"].get<std::string>() << " T=" << r.value("temperature", 0.0);
      if (r.value("oracle", std::string("none")) != "none") o << ", **oracle " << r["oracle"].get<std::string>() << "**";
      o << " |\n";
    }
    o << "\n";
  }
  return o.str();
}

}  // namespace

std::string write_report(const std::string& ckpt) {
  std::vector<Stage> stages;
  std::string dir = ckpt::find_latest_checkpoint(ckpt);
  std::set<std::string> seen;
  while (!dir.empty() && fs::exists(fs::path(dir) / "meta.json") && seen.insert(canon(dir)).second) {
    stages.insert(stages.begin(), read_stage(dir, stages.empty() ? ckpt : dir));
    const json& lin = stages.front().meta.contains("lineage") ? stages.front().meta["lineage"] : json();
    dir = lin.is_object() && lin.contains("parent") && lin["parent"].is_string() ? lin["parent"].get<std::string>() : "";
  }
  const Stage& last = stages.back();
  const std::string report_dir = last.run_dir, path = (fs::path(report_dir) / "report.md").string();
  char when[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  std::ostringstream o;
  o << "# kiln report card\n\nGenerated " << when << " for `" << last.step_dir << "` (stage " << last.name << ", step "
    << last.step << ").\n\n## Summary\n\n| metric |";
  for (const auto& s : stages) o << " " << s.name << " |";
  o << "\n|---|";
  for (size_t i = 0; i < stages.size(); ++i) o << "---|";
  o << "\n";
  std::vector<std::string> rows = {"bpb"};
  for (const auto& t : chat_tasks()) rows.push_back(t.name);
  rows.push_back("chatcore");
  for (const auto& row : rows) {
    o << "| " << row << " |";
    for (const auto& s : stages) {
      auto it = s.evals.find(row);
      o << " " << (it == s.evals.end() ? "-" : fmt(it->second.value("score", 0.0))) << " |";
    }
    o << "\n";
  }
  o << "\n";
  for (const auto& s : stages) o << stage_section(s, report_dir);
  std::ofstream out(path);
  out << o.str();
  if (!out) throw Error("[report] cannot write " + path, "is " + report_dir + " writable?");
  return path;
}

}  // namespace kiln::eval
