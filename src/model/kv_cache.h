// The KV cache of GPT::forward_cached: per layer one key and one value tensor (slots, T, H_kv, D)
// plus a length per slot. A slot is one sequence; slots advance independently (ragged rows), and
// a freed slot (reset) is reused by a new sequence while the others continue (continuous batching).
#pragma once
#include <torch/torch.h>

#include <vector>

#include "model/gpt.h"

namespace kiln::model {

class KVCache {
 public:
  // Storage is allocated on the first write, in the dtype and on the device of the keys; it grows
  // (slots and time) by copying when needed, up to the model's rotary table.
  KVCache(const GPTConfig& cfg, int64_t slots, int64_t capacity);

  int64_t slots() const { return static_cast<int64_t>(len_.size()); }
  int64_t capacity() const { return capacity_; }
  // Tokens cached for a slot; they sit at positions 0..length-1.
  int64_t length(int64_t slot) const { return len_.at(static_cast<size_t>(slot)); }
  // Forget a slot's tokens (free it, or start it over); other slots are untouched.
  void reset(int64_t slot) { len_.at(static_cast<size_t>(slot)) = 0; }
  // Roll a slot back to `n` tokens (n <= length).
  void truncate(int64_t slot, int64_t n);
  // More slots (new ones empty); existing slots keep their contents.
  void add_slots(int64_t n);
  // Make room for `t` tokens per slot.
  void reserve(int64_t t);

 private:
  friend class GPTImpl;
  int64_t n_layer_, n_kv_head_, head_dim_;
  int64_t capacity_;
  std::vector<int64_t> len_;
  std::vector<torch::Tensor> k_, v_;  // per layer (slots, capacity, H_kv, D); undefined until first write
  void resize(int64_t slots, int64_t capacity);
};

}  // namespace kiln::model
