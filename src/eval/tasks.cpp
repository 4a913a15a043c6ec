// Task table, oracle answers and scorers; see tasks.h. The rules themselves (GSM8K regex,
// HumanEval extraction) live in src/data/tasks.cpp beside the readers.
#include "eval/tasks.h"

#include <filesystem>
#include <variant>

#include "core/error.h"

namespace kiln::eval {

const std::vector<TaskSpec>& chat_tasks() {
  static const std::vector<TaskSpec> t = {
      {"arc-easy", data::TaskKind::Arc, "arc/ARC-Easy-test.jsonl", true, 0.25},
      {"arc-challenge", data::TaskKind::Arc, "arc/ARC-Challenge-test.jsonl", true, 0.25},
      {"mmlu", data::TaskKind::Mmlu, "mmlu/test", true, 0.25},
      {"gsm8k", data::TaskKind::Gsm8k, "gsm8k/test.jsonl", false, 0.0},
      {"humaneval", data::TaskKind::HumanEval, "humaneval/HumanEval.jsonl", false, 0.0},
  };
  return t;
}

const TaskSpec& task_spec(const std::string& name) {
  for (const auto& t : chat_tasks())
    if (t.name == name) return t;
  throw Error("[eval] unknown task '" + name + "'",
              "use one of arc-easy, arc-challenge, mmlu, gsm8k, humaneval, bpb (comma-separated for several), or "
              "chatcore, all, report alone");
}

std::string task_data_path(const TaskSpec& t, const std::string& data_dir) {
  namespace fs = std::filesystem;
  const fs::path p = fs::path(data_dir) / t.rel_path;
  if (fs::exists(p)) return p.string();
  // The original MMLU tar (fetched when no local copy exists) unpacks to mmlu/data/test.
  if (t.kind == data::TaskKind::Mmlu && fs::exists(fs::path(data_dir) / "mmlu/data/test"))
    return (fs::path(data_dir) / "mmlu/data/test").string();
  const std::string top = t.rel_path.substr(0, t.rel_path.find('/'));
  throw Error("[eval] task " + t.name + ": " + p.string() + " does not exist",
              "fetch it with data_tools/fetch.sh " + top + " " + (fs::path(data_dir) / top).string() +
                  " (or point --data-dir at the folder holding " + top + "/)");
}

double centered_accuracy(double accuracy, double baseline) { return (accuracy - baseline) / (1.0 - baseline); }

namespace {
std::string gsm8k_gold_text(const data::TaskExample& ex) {
  // The gold assistant message as the model would write it: text, tool calls and their outputs.
  std::string s;
  const auto& content = ex.conv.messages.back().content;
  if (const auto* text = std::get_if<std::string>(&content)) return *text;
  for (const auto& p : std::get<std::vector<tok::Part>>(content)) {
    if (p.type == tok::PartType::Python) s += "<|python_start|>" + p.text + "<|python_end|>";
    else if (p.type == tok::PartType::PythonOutput) s += "<|output_start|>" + p.text + "<|output_end|>";
    else s += p.text;
  }
  return s;
}
}  // namespace

std::string oracle_answer(const TaskSpec& t, const data::TaskExample& ex, Oracle o) {
  const bool gold = o == Oracle::Gold;
  if (t.categorical) {
    if (gold) return ex.answer;
    for (const auto& l : ex.letters)
      if (l != ex.answer) return l;
    return "";
  }
  // GSM8K: numbers after the first "#### " line (another "#### " line, a last number), so that
  // only a scorer reading the first "#### " as nanochat does gives 100 % and 0 %.
  if (t.kind == data::TaskKind::Gsm8k)
    return gold ? gsm8k_gold_text(ex) + "\n(Not #### " + ex.answer + "1, and not 7.)"
                : "I am not sure.\n#### " + ex.answer + "1\nThough some would say " + ex.answer;
  // HumanEval: the gold assistant message is prompt + canonical solution.
  return gold ? ex.prompt + "\n" + ex.answer : ex.prompt + "    raise NotImplementedError\n";
}

bool score_mc(const std::string& letter, const data::TaskExample& ex) { return letter == ex.answer; }

bool score_gsm8k(const std::string& completion, const data::TaskExample& ex) {
  auto got = data::gsm8k_extract_answer(completion);
  return got && *got == ex.answer;
}

std::string humaneval_program(const std::string& completion, const data::TaskExample& ex) {
  return data::humaneval_imports(ex.prompt) + "\n\n" + data::humaneval_extract_program(completion) + "\n\n" +
         ex.test + "\n\n" + "check(" + ex.entry_point + ")\n";
}

}  // namespace kiln::eval
