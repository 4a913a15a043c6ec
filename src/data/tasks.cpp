// Task readers; see tasks.h. Formats as in shared/data/README.md and nanochat's tasks/*.py.
#include "data/tasks.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/json_file.h"  // read_text_file

namespace kiln::data {
namespace fs = std::filesystem;

namespace {

// Calls fn(record, "path:line") for each non-blank JSONL line.
template <class Fn>
void for_each_jsonl(const std::string& path, Fn fn) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("[task] cannot open " + path, "check the path (data_tools/fetch.sh fetches the tasks)");
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(n);
    nlohmann::json rec = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (rec.is_discarded()) throw Error("[task] " + where + ": not valid JSON", "each line must be one JSON object");
    fn(rec, where);
  }
}

std::string str_field(const nlohmann::json& rec, const char* key, const std::string& where) {
  if (!rec.is_object() || !rec.contains(key) || !rec[key].is_string())
    throw Error("[task] " + where + ": the record has no string field '" + key + "'",
                "is this file in the task's format? (see data_tools/fetch.sh)");
  return rec[key].get<std::string>();
}

TaskExample mc_example(const std::string& question, const std::vector<std::string>& letters,
                       const std::vector<std::string>& choices, const std::string& answer, const std::string& id) {
  TaskExample ex;
  ex.id = id;
  ex.letters = letters;
  ex.answer = answer;
  ex.conv.messages.push_back({"user", render_mc(question, letters, choices)});
  ex.conv.messages.push_back({"assistant", answer});
  return ex;
}

}  // namespace

std::string render_mc(const std::string& question, const std::vector<std::string>& letters,
                      const std::vector<std::string>& choices) {
  std::string q = "Multiple Choice question: " + question + "\n";
  for (size_t i = 0; i < letters.size() && i < choices.size(); ++i) q += "- " + choices[i] + "=" + letters[i] + "\n";
  q += "\nRespond only with the letter of the correct answer.";
  return q;
}

std::vector<TaskExample> read_arc(const std::string& path) {
  std::vector<TaskExample> out;
  for_each_jsonl(path, [&](const nlohmann::json& rec, const std::string& where) {
    const std::string question = str_field(rec, "question", where), key = str_field(rec, "answerKey", where);
    const auto& ch = rec.contains("choices") ? rec["choices"] : nlohmann::json();
    if (!ch.is_object() || !ch.contains("text") || !ch.contains("label") || !ch["text"].is_array() ||
        !ch["label"].is_array() || ch["text"].size() != ch["label"].size() || ch["text"].empty())
      throw Error("[task] " + where + ": 'choices' must hold equal-length lists 'text' and 'label'",
                  "is this an ARC file (allenai/ai2_arc JSONL)?");
    std::vector<std::string> letters, choices;
    for (size_t i = 0; i < ch["text"].size(); ++i) {
      if (!ch["text"][i].is_string() || !ch["label"][i].is_string())
        throw Error("[task] " + where + ": choice " + std::to_string(i) + " is not a string");
      choices.push_back(ch["text"][i].get<std::string>());
      letters.push_back(ch["label"][i].get<std::string>());
    }
    if (std::find(letters.begin(), letters.end(), key) == letters.end())
      throw Error("[task] " + where + ": answerKey '" + key + "' is not one of the choice labels");
    std::string id = rec.contains("id") && rec["id"].is_string() ? rec["id"].get<std::string>() : where;
    out.push_back(mc_example(question, letters, choices, key, id));
  });
  return out;
}

std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& where) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
        else quoted = false;
      } else {
        field += c;
      }
      continue;
    }
    if (c == '"') quoted = true, any = true;
    else if (c == ',') row.push_back(std::move(field)), field.clear(), any = true;
    else if (c == '\r') continue;
    else if (c == '\n') {
      if (any || !field.empty()) row.push_back(std::move(field)), rows.push_back(std::move(row));
      field.clear(), row.clear(), any = false;
    } else {
      field += c, any = true;
    }
  }
  if (quoted) throw Error("[task] " + where + ": a quoted CSV field is never closed", "the file is truncated?");
  if (any || !field.empty()) row.push_back(std::move(field)), rows.push_back(std::move(row));
  return rows;
}

std::vector<TaskExample> read_mmlu(const std::string& csv_or_dir) {
  std::vector<std::string> files;
  if (fs::is_directory(csv_or_dir)) {
    for (const auto& e : fs::directory_iterator(csv_or_dir))
      if (e.path().extension() == ".csv") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    if (files.empty()) throw Error("[task] " + csv_or_dir + ": no .csv files in this directory");
  } else {
    files.push_back(csv_or_dir);
  }
  static const std::vector<std::string> kLetters = {"A", "B", "C", "D"};
  std::vector<TaskExample> out;
  for (const auto& f : files) {
    auto rows = parse_csv(read_text_file(f, "check the path (data_tools/fetch.sh fetches the tasks)"), f);
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto& row = rows[r];
      if (r == 0 && !row.empty() && row[0] == "question") continue;  // header
      const std::string where = f + ": record " + std::to_string(r);
      if (row.size() != 6)
        throw Error("[task] " + where + ": " + std::to_string(row.size()) + " fields where 6 were expected",
                    "MMLU rows are question,choice0,choice1,choice2,choice3,answer");
      const std::string& a = row[5];
      int idx = a.size() == 1 && a[0] >= '0' && a[0] <= '3' ? a[0] - '0'
              : a.size() == 1 && a[0] >= 'A' && a[0] <= 'D' ? a[0] - 'A' : -1;
      if (idx < 0) throw Error("[task] " + where + ": answer '" + a + "' is neither 0-3 nor A-D");
      out.push_back(mc_example(row[0], kLetters, {row[1], row[2], row[3], row[4]}, kLetters[idx], where));
    }
  }
  return out;
}

std::vector<TaskExample> read_gsm8k(const std::string& path, int64_t* skipped) {
  std::vector<TaskExample> out;
  for_each_jsonl(path, [&](const nlohmann::json& rec, const std::string& where) {
    const std::string q = str_field(rec, "question", where), a = str_field(rec, "answer", where);
    auto gold = gsm8k_extract_answer(a);
    if (!gold && skipped) {
      ++*skipped;
      return;
    }
    if (!gold) throw Error("[task] " + where + ": the answer has no '#### <number>' line", "is this GSM8K?");
    TaskExample ex;
    ex.id = where;
    ex.answer = *gold;
    ex.conv.messages.push_back({"user", q});
    ex.conv.messages.push_back({"assistant", tok::gsm8k_answer_parts(a)});
    out.push_back(std::move(ex));
  });
  return out;
}

std::vector<TaskExample> read_humaneval(const std::string& path) {
  std::vector<TaskExample> out;
  for_each_jsonl(path, [&](const nlohmann::json& rec, const std::string& where) {
    TaskExample ex;
    ex.id = str_field(rec, "task_id", where);
    ex.prompt = str_field(rec, "prompt", where);
    ex.answer = str_field(rec, "canonical_solution", where);
    ex.test = str_field(rec, "test", where);
    ex.entry_point = str_field(rec, "entry_point", where);
    ex.conv.messages.push_back({"user", ex.prompt});
    ex.conv.messages.push_back({"assistant", ex.prompt + "\n" + ex.answer});
    out.push_back(std::move(ex));
  });
  return out;
}

std::vector<TaskExample> read_task(TaskKind kind, const std::string& path) {
  switch (kind) {
    case TaskKind::Arc: return read_arc(path);
    case TaskKind::Mmlu: return read_mmlu(path);
    case TaskKind::Gsm8k: return read_gsm8k(path);
    case TaskKind::HumanEval: return read_humaneval(path);
  }
  return {};
}

TaskKind task_kind_from_name(const std::string& name) {
  if (name == "arc") return TaskKind::Arc;
  if (name == "mmlu") return TaskKind::Mmlu;
  if (name == "gsm8k") return TaskKind::Gsm8k;
  if (name == "humaneval") return TaskKind::HumanEval;
  throw Error("[task] unknown task format '" + name + "'", "use one of arc, mmlu, gsm8k, humaneval");
}

std::optional<std::string> gsm8k_extract_answer(const std::string& s) {
  // "#### (\-?[0-9\.\,]+)": the first "#### " followed by at least one allowed character.
  auto allowed = [](char c) { return (c >= '0' && c <= '9') || c == '.' || c == ','; };
  for (size_t p = s.find("#### "); p != std::string::npos; p = s.find("#### ", p + 1)) {
    size_t i = p + 5, b = i;
    if (i < s.size() && s[i] == '-') ++i;
    size_t j = i;
    while (j < s.size() && allowed(s[j])) ++j;
    if (j == i) continue;
    std::string num;
    for (size_t k = b; k < j; ++k)
      if (s[k] != ',') num += s[k];
    return num;
  }
  return std::nullopt;
}

std::string humaneval_imports(const std::string& prompt) {
  std::string out;
  std::istringstream in(prompt);
  std::string line;
  while (std::getline(in, line)) {
    const size_t b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
    const std::string s = b == std::string::npos ? "" : line.substr(b, e - b + 1);
    if (s.rfind("import ", 0) == 0 || s.rfind("from ", 0) == 0) {
      out += (out.empty() ? "" : "\n") + s;
    } else if (!s.empty() && s[0] != '#') {
      break;
    }
  }
  return out;
}

namespace {
std::string strip(const std::string& s) {
  const char* ws = " \t\r\n\v\f";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }
}  // namespace

std::string humaneval_extract_program(const std::string& c) {
  // The first match of ```(?:python)?\s*\n(.*?)\n``` (dot matches newlines).
  for (size_t p = c.find("```"); p != std::string::npos; p = c.find("```", p + 1)) {
    for (size_t tag : {size_t(6), size_t(0)}) {  // try "python" first, as the regex's greedy '?'
      size_t i = p + 3;
      if (tag && c.compare(i, 6, "python") != 0) continue;
      i += tag;
      size_t j = i, last_nl = std::string::npos;
      while (j < c.size() && is_space(c[j])) {
        if (c[j] == '\n') last_nl = j;
        ++j;
      }
      if (last_nl == std::string::npos) continue;
      // \s* backtracks to each newline of the run from the last one down; the body is lazy.
      for (size_t nl = last_nl + 1; nl-- > i;) {
        if (c[nl] != '\n') continue;
        const size_t body = nl + 1, e = c.find("\n```", body);
        if (e != std::string::npos) return strip(c.substr(body, e - body));
      }
    }
  }
  return strip(c);
}

}  // namespace kiln::data
