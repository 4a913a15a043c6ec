// Reading and checking the CORE eval bundle; see core_bundle.h. The rules are nanochat's where it
// has them (core.yaml keys, the ' ' default delimiter, num_fewshot[0], the CSV's "Eval Task" and
// "Random baseline" columns); where nanochat would crash (a KeyError, an IndexError, an assert,
// random.sample's ValueError) kiln stops here with the file, line and key instead.
#include "eval/core_bundle.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/json_file.h"
#include "data/tasks.h"

namespace kiln::eval {
namespace fs = std::filesystem;
namespace {

const char* kFetchHint = "fetch the bundle with data_tools/fetch.sh core DIR and pass --bundle DIR";

std::string at_line(const std::string& file, const YAML::Node& n) {
  const auto m = n.Mark();
  return m.line >= 0 ? file + ":" + std::to_string(m.line + 1) : file;
}

// A string field of a JSONL record. Jinja renders a value with str(): a JSON integer renders as
// its digits, so those are accepted; anything else is an error naming the key.
std::string text_field(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) throw Error("[core] " + where + ": key '" + key + "' is missing");
  const auto& v = j.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return v.dump();
  throw Error("[core] " + where + ": key '" + key + "' must be a string, not " + v.dump().substr(0, 60));
}

std::vector<std::string> text_list(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) throw Error("[core] " + where + ": key '" + key + "' is missing");
  const auto& v = j.at(key);
  if (!v.is_array() || v.empty())
    throw Error("[core] " + where + ": key '" + key + "' must be a non-empty list of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i].is_string()) out.push_back(v[i].get<std::string>());
    else if (v[i].is_number_integer()) out.push_back(v[i].dump());
    else throw Error("[core] " + where + ": " + key + "[" + std::to_string(i) + "] must be a string");
  }
  return out;
}

int64_t gold_field(const nlohmann::json& j, size_t n_options, const char* options_key, const std::string& where) {
  if (!j.contains("gold")) throw Error("[core] " + where + ": key 'gold' is missing");
  const auto& v = j.at("gold");
  if (!v.is_number_integer())
    throw Error("[core] " + where + ": key 'gold' must be an integer index, not " + v.dump().substr(0, 60));
  const int64_t g = v.get<int64_t>();
  if (g < 0 || g >= static_cast<int64_t>(n_options))
    throw Error("[core] " + where + ": key 'gold' = " + std::to_string(g) + " is out of range for " +
                    std::to_string(n_options) + " " + options_key,
                "gold is the 0-based index of the right entry of '" + std::string(options_key) + "'");
  return g;
}

std::map<std::string, double> read_baselines(const std::string& path) {
  const auto rows = data::parse_csv(read_text_file(path, kFetchHint), path);
  if (rows.empty()) throw Error("[core] " + path + " is empty", "it needs the columns 'Eval Task' and 'Random baseline'");
  int task_col = -1, base_col = -1;
  for (size_t c = 0; c < rows[0].size(); ++c) {
    if (rows[0][c] == "Eval Task") task_col = static_cast<int>(c);
    if (rows[0][c] == "Random baseline") base_col = static_cast<int>(c);
  }
  if (task_col < 0 || base_col < 0)
    throw Error("[core] " + path + ": the header has no '" + (task_col < 0 ? "Eval Task" : "Random baseline") +
                    "' column",
                "eval_meta_data.csv names each task in 'Eval Task' and its chance accuracy in percent in "
                "'Random baseline'");
  std::map<std::string, double> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    const std::string where = path + ": record " + std::to_string(r + 1);
    if (row.size() <= static_cast<size_t>(std::max(task_col, base_col)))
      throw Error("[core] " + where + ": " + std::to_string(row.size()) + " fields, fewer than the header's");
    const std::string& s = row[base_col];
    size_t used = 0;
    double b = NAN;
    try {
      b = std::stod(s, &used);
    } catch (const std::exception&) {
    }
    while (used < s.size() && std::isspace(static_cast<unsigned char>(s[used]))) ++used;
    if (std::isnan(b) || used != s.size() || b < 0 || b >= 100)
      throw Error("[core] " + where + ": 'Random baseline' = '" + s + "' for '" + row[task_col] +
                      "' is not a number in [0, 100)",
                  "baselines are percentages (25.0 for 4-way multiple choice)");
    out[row[task_col]] = b;  // a later row wins, as csv.DictReader into a dict
  }
  return out;
}

}  // namespace

const char* core_task_type_name(CoreTaskType t) {
  switch (t) {
    case CoreTaskType::MultipleChoice: return "multiple_choice";
    case CoreTaskType::Schema: return "schema";
    case CoreTaskType::LanguageModeling: return "language_modeling";
  }
  return "?";
}

std::vector<CoreItem> read_core_jsonl(const std::string& path, CoreTaskType type) {
  const std::string text = read_text_file(path, kFetchHint);
  std::vector<CoreItem> items;
  std::istringstream in(text);
  std::string line;
  for (int64_t ln = 1; std::getline(in, line); ++ln) {
    // Blank lines are skipped (nanochat's json.loads would fail on them; they carry nothing).
    if (line.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(ln);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) throw Error("[core] " + where + ": not a valid JSON record", "each line holds one JSON object");
    if (!j.is_object()) throw Error("[core] " + where + ": a JSON " + j.type_name() + ", not an object");
    CoreItem it;
    it.line = ln;
    switch (type) {
      case CoreTaskType::MultipleChoice:
        it.query = text_field(j, "query", where);
        it.choices = text_list(j, "choices", where);
        it.gold = gold_field(j, it.choices.size(), "choices", where);
        break;
      case CoreTaskType::Schema:
        it.context_options = text_list(j, "context_options", where);
        it.continuation = text_field(j, "continuation", where);
        it.gold = gold_field(j, it.context_options.size(), "context_options", where);
        break;
      case CoreTaskType::LanguageModeling:
        it.context = text_field(j, "context", where);
        it.continuation = text_field(j, "continuation", where);
        break;
    }
    items.push_back(std::move(it));
  }
  return items;
}

CoreBundle load_core_bundle(const std::string& dir) {
  CoreBundle b;
  b.dir = dir;
  if (!fs::is_directory(dir))
    throw Error("[core] the CORE eval bundle " + dir + " is not a directory", kFetchHint);
  const std::string yaml_path = (fs::path(dir) / "core.yaml").string();
  const std::string csv_path = (fs::path(dir) / "eval_meta_data.csv").string();
  if (!fs::exists(yaml_path)) throw Error("[core] " + yaml_path + " does not exist", kFetchHint);
  YAML::Node root;
  try {
    root = YAML::LoadFile(yaml_path);
  } catch (const YAML::Exception& e) {
    throw Error("[core] " + yaml_path + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML (" + e.msg + ")");
  }
  const YAML::Node tasks = root.IsMap() ? root["icl_tasks"] : YAML::Node();
  if (!tasks || !tasks.IsSequence() || tasks.size() == 0)
    throw Error("[core] " + yaml_path + ": key 'icl_tasks' is missing or not a non-empty list",
                "core.yaml holds icl_tasks: a list of {label, dataset_uri, num_fewshot, icl_task_type}");
  const auto baselines = read_baselines(csv_path);
  std::set<std::string> labels;
  for (const YAML::Node& t : tasks) {
    const std::string at = at_line(yaml_path, t);
    if (!t.IsMap()) throw Error("[core] " + at + ": an entry of icl_tasks is not a mapping");
    auto scalar = [&](const char* key) -> std::string {
      const YAML::Node v = t[key];
      if (!v || !v.IsScalar())
        throw Error("[core] " + at + ": key '" + key + "' is missing or not a single value");
      return v.as<std::string>();
    };
    CoreTask task;
    task.label = scalar("label");
    if (!labels.insert(task.label).second) throw Error("[core] " + at + ": label '" + task.label + "' appears twice");
    const std::string where = at + " (task " + task.label + ")";
    const std::string type = scalar("icl_task_type");
    if (type == "multiple_choice") task.type = CoreTaskType::MultipleChoice;
    else if (type == "schema") task.type = CoreTaskType::Schema;
    else if (type == "language_modeling") task.type = CoreTaskType::LanguageModeling;
    else
      throw Error("[core] " + where + ": icl_task_type '" + type + "' is not a task type CORE knows",
                  "use multiple_choice, schema or language_modeling");
    // num_fewshot: nanochat reads the first entry of a list; a plain integer is taken as is.
    const YAML::Node nf = t["num_fewshot"];
    const YAML::Node first = nf && nf.IsSequence() && nf.size() > 0 ? nf[0] : nf;
    bool ok = first && first.IsScalar();
    try {
      if (ok) task.num_fewshot = first.as<int64_t>();
    } catch (const YAML::Exception&) {
      ok = false;
    }
    if (!ok) throw Error("[core] " + where + ": key 'num_fewshot' is missing or not a list of integers (e.g. [10])");
    if (task.num_fewshot < 0) throw Error("[core] " + where + ": num_fewshot " + std::to_string(task.num_fewshot) + " < 0");
    if (const YAML::Node d = t["continuation_delimiter"]) {
      if (!d.IsScalar()) throw Error("[core] " + where + ": key 'continuation_delimiter' is not a string");
      task.delimiter = d.as<std::string>();
    }
    const std::string uri = scalar("dataset_uri");
    task.path = (fs::path(dir) / "eval_data" / uri).string();
    if (!fs::is_regular_file(task.path))
      throw Error("[core] " + where + ": dataset_uri " + uri + ": " + task.path + " does not exist", kFetchHint);
    auto base = baselines.find(task.label);
    if (base == baselines.end())
      throw Error("[core] " + csv_path + " has no row for task '" + task.label + "' (named in " + at + ")",
                  "every core.yaml label needs an 'Eval Task' row with its 'Random baseline'");
    task.random_baseline = base->second;
    task.items = read_core_jsonl(task.path, task.type);
    // random.sample(others, k) needs k items besides the one asked (nanochat crashes otherwise,
    // its issue #550). A whole task file that small is a broken bundle; --max-per-task cutting a
    // task below it is handled where the cut is made (core_eval.cpp).
    if (static_cast<int64_t>(task.items.size()) <= task.num_fewshot)
      throw Error("[core] " + task.path + " holds " + std::to_string(task.items.size()) + " items, but num_fewshot " +
                      std::to_string(task.num_fewshot) + " (" + where + ") needs at least " +
                      std::to_string(task.num_fewshot + 1),
                  "an item is never its own few-shot example: a task needs num_fewshot + 1 items");
    b.tasks.push_back(std::move(task));
  }
  return b;
}

}  // namespace kiln::eval
