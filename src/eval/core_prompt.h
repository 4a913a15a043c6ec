// One CORE example made ready for the model, by nanochat's core_eval.py rules: the few-shot draw
// (random.Random(1234 + idx).sample of the other items), the prompt templates per task type, the
// <|bos|>-prefixed token rows, the continuation span of each row (common token prefix for
// multiple choice, common suffix for schema, the prompt without/with continuation for language
// modeling) and the crop of rows longer than the model's context (keep the end, shift the span).
// No torch here: the same code renders prompts for the model, the dump and the tests.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "eval/core_bundle.h"
#include "tokenizer/tokenizer.h"

namespace kiln::eval {

struct CorePrompt {
  std::vector<int64_t> fewshot;             // positions (in the task's evaluated order) of the examples shown
  std::vector<std::string> texts;           // rendered prompts: one per option (MC/schema); LM: without, with
  std::vector<std::vector<int64_t>> rows;   // what the model reads: one row per option (LM: one), bos first
  std::vector<int64_t> start, end;          // per row, the continuation's tokens are row[start, end)
  int64_t cropped = 0;                      // rows longer than the context, cut to their last max_len tokens
};

// nanochat's evaluated order of a task: random.Random(1337).shuffle of the items, then the first
// max_per_task (<= 0: all). Returns item indices into task.items.
std::vector<int64_t> core_order(int64_t n_items, int64_t max_per_task);

// The few-shot examples of position idx among n: random.Random(1234 + idx).sample(
// [i for i in range(n) if i != idx], k). Requires k < n.
std::vector<int64_t> core_fewshot(int64_t idx, int64_t n, int64_t k);

// Python's str.strip() (Unicode whitespace, as Jinja's `trim` filter and nanochat's .strip()).
std::string py_strip(std::string_view s);

// The prompts of item `data[idx]` with the few-shot items `fewshot` (positions in data), exactly
// as nanochat's Jinja templates render them.
std::vector<std::string> render_core_prompts(const CoreTask& task, const std::vector<const CoreItem*>& data,
                                             int64_t idx, const std::vector<int64_t>& fewshot);

// Everything above for data[idx]: few-shot draw (k = num_fewshot), rendering, tokens and spans,
// crop to max_len tokens (> 1). A span that the crop would start at 0 starts at 1 instead (the
// first token of a row has no prediction; nanochat asserts there). A language-modeling prompt
// whose tokens without the continuation are not a prefix of those with it is a kiln::Error
// naming the file and line (nanochat asserts).
CorePrompt prepare_core_prompt(const CoreTask& task, const std::vector<const CoreItem*>& data, int64_t idx,
                               int64_t num_fewshot, const tok::Tokenizer& tok, int64_t max_len);

}  // namespace kiln::eval
