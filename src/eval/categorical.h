// Multiple-choice scoring as nanochat's chat_eval: the prompts of a batch (the conversation up
// to <|assistant_start|>), right-padded with <|bos|>, go through one forward; at each row's last
// prompt position the answer letter with the largest logit is the prediction (sampling-free).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "data/tasks.h"
#include "model/gpt.h"
#include "tokenizer/tokenizer.h"

namespace kiln::eval {

struct McBatch {
  torch::Tensor ids;                          // (B, T) int64, right-padded with bos
  std::vector<int64_t> last;                  // per row: index of its last prompt token
  std::vector<std::vector<int64_t>> letters;  // per row: the token id of each answer letter
  int64_t cropped = 0;                        // prompts cut to max_len (their oldest tokens dropped)
};

// Tokenizes a batch; a prompt longer than max_len keeps its last max_len tokens. Every letter
// must be one token (throws kiln::Error naming it otherwise).
McBatch make_mc_batch(const tok::Tokenizer& tok, const std::vector<const data::TaskExample*>& exs, int64_t max_len);

// Per row, the logits (fp32) of its letter tokens at its last prompt position: what the
// prediction is taken from, and what --dump-examples writes for the reference to check.
std::vector<std::vector<float>> letter_logits(const torch::Tensor& logits, const McBatch& b);

// The predicted letter index per row from logits (B, T, V): argmax over the row's letter tokens
// at its last prompt position (the first of equal maxima).
std::vector<int64_t> argmax_letters(const torch::Tensor& logits, const McBatch& b);
std::vector<int64_t> argmax_letters(const std::vector<std::vector<float>>& letter_logits);

}  // namespace kiln::eval
