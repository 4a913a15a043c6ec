// CORE prompts, tokens and spans; see core_prompt.h. The templates below are nanochat's Jinja
// templates (render_prompts_mc / _schema / _lm) written out: every few-shot example is followed
// by a blank line ("\n\n"), the item comes last, and nothing else is added.
#include "eval/core_prompt.h"

#include <algorithm>

#include "core/error.h"
#include "eval/py_random.h"

namespace kiln::eval {
namespace {

// Python's str.isspace() code points (Py_UNICODE_ISSPACE).
bool py_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// The code point starting at s[i] (valid UTF-8 from JSON/YAML; a stray byte counts as itself).
uint32_t code_point(std::string_view s, size_t i, size_t* len) {
  const auto b = static_cast<unsigned char>(s[i]);
  const size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 1;
  if (i + n > s.size()) return *len = 1, b;
  uint32_t c = n == 1 ? b : b & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  *len = n;
  return c;
}

std::vector<int64_t> with_bos(const tok::Tokenizer& tok, const std::string& text) {
  const auto ids = tok.encode(text);
  std::vector<int64_t> row;
  row.reserve(ids.size() + 1);
  row.push_back(tok.bos_id());
  row.insert(row.end(), ids.begin(), ids.end());
  return row;
}

// find_common_length: the length of the common prefix (or suffix) of every row.
int64_t common_length(const std::vector<std::vector<int64_t>>& rows, bool suffix) {
  size_t n = rows[0].size();
  for (const auto& r : rows) n = std::min(n, r.size());
  for (size_t i = 0; i < n; ++i)
    for (const auto& r : rows) {
      const size_t a = suffix ? r.size() - 1 - i : i, b = suffix ? rows[0].size() - 1 - i : i;
      if (r[a] != rows[0][b]) return static_cast<int64_t>(i);
    }
  return static_cast<int64_t>(n);
}

}  // namespace

std::vector<int64_t> core_order(int64_t n_items, int64_t max_per_task) {
  std::vector<int64_t> order(n_items);
  for (int64_t i = 0; i < n_items; ++i) order[i] = i;
  PyRandom(1337).shuffle(order);
  if (max_per_task > 0 && n_items > max_per_task) order.resize(max_per_task);
  return order;
}

std::vector<int64_t> core_fewshot(int64_t idx, int64_t n, int64_t k) {
  if (k <= 0) return {};
  std::vector<int64_t> available;
  available.reserve(n - 1);
  for (int64_t i = 0; i < n; ++i)
    if (i != idx) available.push_back(i);
  return PyRandom(1234 + idx).sample(available, k);
}

std::string py_strip(std::string_view s) {
  size_t b = 0, e = s.size(), len = 0;
  while (b < e && py_space(code_point(s, b, &len))) b += len;
  while (e > b) {
    size_t p = e - 1;  // back to the start byte of the last code point
    while (p > b && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80 && e - p < 4) --p;
    const uint32_t c = code_point(s, p, &len);
    if (p + len != e || !py_space(c)) break;
    e = p;
  }
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> render_core_prompts(const CoreTask& task, const std::vector<const CoreItem*>& data,
                                             int64_t idx, const std::vector<int64_t>& fewshot) {
  const CoreItem& it = *data[idx];
  const std::string& d = task.delimiter;
  std::string shots;
  std::vector<std::string> out;
  switch (task.type) {
    case CoreTaskType::MultipleChoice:
      for (int64_t f : fewshot) shots += data[f]->query + d + data[f]->choices[data[f]->gold] + "\n\n";
      for (const auto& c : it.choices) out.push_back(shots + it.query + d + c);
      break;
    case CoreTaskType::Schema:
      for (int64_t f : fewshot) shots += data[f]->context_options[data[f]->gold] + d + data[f]->continuation + "\n\n";
      for (const auto& c : it.context_options) out.push_back(shots + c + d + it.continuation);
      break;
    case CoreTaskType::LanguageModeling: {
      for (int64_t f : fewshot) shots += py_strip(data[f]->context) + d + data[f]->continuation + "\n\n";
      const std::string without = shots + py_strip(it.context) + d;
      // nanochat strips the prompt without the continuation (so that its trailing whitespace is
      // not a token that the prompt with the continuation merges into the next word).
      out.push_back(py_strip(without));
      out.push_back(without + it.continuation);
      break;
    }
  }
  return out;
}

CorePrompt prepare_core_prompt(const CoreTask& task, const std::vector<const CoreItem*>& data, int64_t idx,
                               int64_t num_fewshot, const tok::Tokenizer& tok, int64_t max_len) {
  CorePrompt p;
  const int64_t n = static_cast<int64_t>(data.size());
  p.fewshot = core_fewshot(idx, n, num_fewshot);
  p.texts = render_core_prompts(task, data, idx, p.fewshot);
  std::vector<std::vector<int64_t>> tokens;
  for (const auto& t : p.texts) tokens.push_back(with_bos(tok, t));
  switch (task.type) {
    case CoreTaskType::MultipleChoice: {  // same context, different continuations: common prefix
      const int64_t s = common_length(tokens, /*suffix=*/false);
      for (const auto& r : tokens) p.start.push_back(s), p.end.push_back(static_cast<int64_t>(r.size()));
      p.rows = std::move(tokens);
      break;
    }
    case CoreTaskType::Schema: {  // different contexts, same continuation: common suffix
      const int64_t suffix = common_length(tokens, /*suffix=*/true);
      for (const auto& r : tokens) {
        p.end.push_back(static_cast<int64_t>(r.size()));
        p.start.push_back(p.end.back() - suffix);
      }
      p.rows = std::move(tokens);
      break;
    }
    case CoreTaskType::LanguageModeling: {  // one row: the prompt with the continuation
      const auto &without = tokens[0], &with = tokens[1];
      if (without.size() >= with.size() || !std::equal(without.begin(), without.end(), with.begin()))
        throw Error("[core] " + task.path + ":" + std::to_string(data[idx]->line) + " (task " + task.label +
                        "): the prompt without the continuation does not tokenize to a prefix of the prompt with it",
                    "language-modeling items need a non-empty continuation that starts a new token (nanochat "
                    "asserts the same)");
      p.start.push_back(static_cast<int64_t>(without.size()));
      p.end.push_back(static_cast<int64_t>(with.size()));
      p.rows.push_back(with);
      break;
    }
  }
  for (size_t r = 0; r < p.rows.size(); ++r) {
    auto& row = p.rows[r];
    const int64_t len = static_cast<int64_t>(row.size());
    if (len <= max_len) continue;
    const int64_t crop = len - max_len;
    row.erase(row.begin(), row.begin() + crop);
    p.start[r] = std::max<int64_t>(1, p.start[r] - crop);
    p.end[r] -= crop;
    ++p.cropped;
  }
  return p;
}

}  // namespace kiln::eval
