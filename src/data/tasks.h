// The public chat tasks as conversations (nanochat's tasks/*.py): ARC (JSONL), MMLU (CSV), GSM8K
// (JSONL) and HumanEval (JSONL). One reader per format, used both by ./prepare --chat (training
// data) and by ./eval (scoring), so a task is rendered the same way in training and evaluation.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/chat.h"

namespace kiln::data {

enum class TaskKind { Arc, Mmlu, Gsm8k, HumanEval };

struct TaskExample {
  tok::Conversation conv;            // the user prompt and the gold assistant answer
  std::string id;                    // "file:line" or the task's own id (HumanEval/N)
  std::vector<std::string> letters;  // multiple choice: the answer letters, in order ("A".."D", or "1".."4")
  std::string answer;                // gold: MC letter | GSM8K number (commas stripped) | HumanEval solution
  // HumanEval only: the program prompt, the test code defining check(), the function to check.
  std::string prompt, test, entry_point;
};

// nanochat's multiple-choice prompt: the letter *after* each choice with no space before it (so
// the prompt holds the same "A" token the answer is), then the instruction line.
std::string render_mc(const std::string& question, const std::vector<std::string>& letters,
                      const std::vector<std::string>& choices);

// Readers; every malformed record throws kiln::Error naming file and line (record).
// ARC: {"id","question","choices":{"text","label"},"answerKey"}; letters are the labels.
std::vector<TaskExample> read_arc(const std::string& jsonl_path);
// MMLU: a CSV file with header question,choice0..choice3,answer (0-based index), or a directory of
// them (all *.csv, sorted by name).
std::vector<TaskExample> read_mmlu(const std::string& csv_or_dir);
// GSM8K: {"question","answer"}; the answer's <<expr=result>> become python/python_output parts.
// A record whose answer has no '#### <number>' line throws, or, with `skipped`, is counted there
// and left out (./rl: a bad row among thousands is reported, not fatal).
std::vector<TaskExample> read_gsm8k(const std::string& jsonl_path, int64_t* skipped = nullptr);
// HumanEval: {"task_id","prompt","canonical_solution","test","entry_point"}; the gold assistant
// message is prompt + "\n" + canonical_solution, as nanochat.
std::vector<TaskExample> read_humaneval(const std::string& jsonl_path);
// Dispatch by kind.
std::vector<TaskExample> read_task(TaskKind kind, const std::string& path);
// "arc" | "mmlu" | "gsm8k" | "humaneval" -> kind; throws kiln::Error naming the value otherwise.
TaskKind task_kind_from_name(const std::string& name);

// GSM8K's answer rule: the first "#### (-?[0-9.,]+)" match, commas removed; nullopt when none.
std::optional<std::string> gsm8k_extract_answer(const std::string& completion);

// HumanEval's program rules (nanochat): the import lines at the top of the prompt, and the first
// ``` / ```python fenced block of a completion (else the whole completion), stripped.
std::string humaneval_imports(const std::string& prompt);
std::string humaneval_extract_program(const std::string& completion);

// Parse RFC 4180 CSV text (quoted fields, "" escapes, embedded newlines) into rows of fields.
// `where` names the file in errors (an unterminated quote).
std::vector<std::vector<std::string>> parse_csv(const std::string& text, const std::string& where);

}  // namespace kiln::data
