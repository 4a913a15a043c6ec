// Multiple-choice batches and the letter argmax; see categorical.h.
#include "eval/categorical.h"

#include <algorithm>

#include "core/error.h"

namespace kiln::eval {

McBatch make_mc_batch(const tok::Tokenizer& tok, const std::vector<const data::TaskExample*>& exs, int64_t max_len) {
  McBatch b;
  std::vector<std::vector<int64_t>> rows;
  for (const auto* ex : exs) {
    auto ids = tok::render_for_completion(tok, ex->conv);
    std::vector<int64_t> row(ids.begin(), ids.end());
    if (max_len > 0 && static_cast<int64_t>(row.size()) > max_len) {
      row.erase(row.begin(), row.end() - max_len);
      ++b.cropped;
    }
    std::vector<int64_t> letters;
    for (const auto& l : ex->letters) {
      auto t = tok.encode(l);
      if (t.size() != 1)
        throw Error("[eval] " + ex->id + ": the answer letter '" + l + "' is " + std::to_string(t.size()) +
                        " tokens in this tokenizer, not one",
                    "multiple-choice scoring reads one logit per letter; letters must be single tokens");
      letters.push_back(t[0]);
    }
    b.letters.push_back(std::move(letters));
    rows.push_back(std::move(row));
  }
  size_t T = 0;
  for (const auto& r : rows) T = std::max(T, r.size());
  b.ids = torch::full({static_cast<int64_t>(rows.size()), static_cast<int64_t>(T)}, static_cast<int64_t>(tok.bos_id()),
                      torch::kInt64);
  auto acc = b.ids.accessor<int64_t, 2>();
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < rows[i].size(); ++j) acc[i][j] = rows[i][j];
    b.last.push_back(static_cast<int64_t>(rows[i].size()) - 1);
  }
  return b;
}

std::vector<std::vector<float>> letter_logits(const torch::Tensor& logits, const McBatch& b) {
  const int64_t B = logits.size(0);
  auto rows = torch::arange(B, torch::kInt64).to(logits.device());
  auto last = torch::tensor(b.last, torch::kInt64).to(logits.device());
  auto at_last = logits.index({rows, last}).to(torch::kFloat32).cpu();  // (B, V)
  std::vector<std::vector<float>> out;
  for (int64_t i = 0; i < B; ++i) {
    auto l = at_last[i].index_select(0, torch::tensor(b.letters[i], torch::kInt64)).contiguous();
    out.emplace_back(l.data_ptr<float>(), l.data_ptr<float>() + l.numel());
  }
  return out;
}

std::vector<int64_t> argmax_letters(const std::vector<std::vector<float>>& letter_logits) {
  std::vector<int64_t> out;
  for (const auto& l : letter_logits) out.push_back(std::max_element(l.begin(), l.end()) - l.begin());
  return out;
}

std::vector<int64_t> argmax_letters(const torch::Tensor& logits, const McBatch& b) {
  return argmax_letters(letter_logits(logits, b));
}

}  // namespace kiln::eval
