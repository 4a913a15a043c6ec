// The KV cache of GPT::forward_cached: per layer one key and one value tensor (slots, T, H_kv, D)
// plus a length per slot. A slot is one sequence; slots advance independently (ragged rows), and
// a freed slot (reset) is reused by a new sequence while the others continue (continuous batching).
#pragma once
#include <torch/torch.h>

#include <map>
#include <utility>
#include <vector>

#include "model/lm.h"

namespace kiln::model {

class KVCache {
 public:
  // Storage is allocated on the first write, in the dtype and on the device of the keys; it grows
  // (slots and time) by copying when needed, up to the model's rotary table.
  KVCache(const CacheShape& shape, int64_t slots, int64_t capacity);

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
  friend class CachedStep;
  int64_t n_layer_, n_kv_head_, head_dim_;
  int64_t capacity_;
  std::vector<int64_t> len_;
  std::vector<torch::Tensor> k_, v_;  // per layer (slots, capacity, H_kv, D); undefined until first write
  // The tokens fed to each slot (slots, capacity) int64, for an architecture that reads the
  // previous token (nanochat2's smear); undefined until CachedStep::previous_tokens first runs.
  torch::Tensor tok_;
  void resize(int64_t slots, int64_t capacity);
};

// One forward_cached call's bookkeeping, shared by every architecture: which cache slots and
// positions each row's tokens take, the one mask that covers prefill, decode and ragged rows,
// the cache writes and the attention over cached keys. See Note [Cached attention].
class CachedStep {
 public:
  // Row b of a (B, T) chunk feeds its first n_tokens[b] tokens into slot slots[b]. Throws
  // kiln::Error when a row would run past max_positions.
  CachedStep(KVCache& cache, const std::vector<int64_t>& n_tokens, const std::vector<int64_t>& slots, int64_t T,
             int64_t max_positions, const torch::Device& device);
  // Each query's absolute position (B, T) int64, padding clamped to max_positions - 1.
  const torch::Tensor& positions() const { return pos_; }
  // When every row's chunk starts at the same position (and no row is padded): that position, so
  // that a caller may slice its tables (a view) instead of gathering them by positions(); else -1.
  int64_t shared_start() const { return uniform_ ? pos0_[0] : -1; }
  // Write layer `layer`'s k, v (B, T, H_kv, D) into the cache and attend q (B, T, H, D) over the
  // slot's cached keys plus the causal part of the chunk. Returns (B, H, T, D). window >= 0: a
  // query at position p sees only keys p-window..p (flash-attention's window_size_left), and only
  // the keys some query of the chunk can see are read from the cache.
  torch::Tensor attend(size_t layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       int64_t window = -1);
  // Each query's previous token (B, T) int64, -1 at position 0, from idx (B, T) and the slot's
  // history; records this chunk's tokens in the cache (call once per step, before commit).
  torch::Tensor previous_tokens(const torch::Tensor& idx);
  // x (B, T, C) at each row's last fed token: (B, C).
  torch::Tensor last_rows(const torch::Tensor& x) const;
  // After the last layer: every slot's length grows by its n_tokens.
  void commit();

 private:
  KVCache& cache_;
  std::vector<int64_t> n_tokens_, slots_, pos0_;
  int64_t B_ = 0, T_ = 0, t_keys_ = 0, slot0_ = 0;
  bool all_full_ = false, identity_ = true, uniform_ = false, no_mask_ = false, committed_ = false;
  torch::Tensor pos_, t_row_, t_t_, t_slot_, t_pos_, slot_idx_, mask_;
  // Per window: the first key read, and the band mask over keys k_lo..t_keys-1 (undefined: none needed).
  std::map<int64_t, std::pair<int64_t, torch::Tensor>> window_masks_;
};

}  // namespace kiln::model
