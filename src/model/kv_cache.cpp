// KVCache storage and CachedStep, the attention over it that every architecture's
// forward_cached uses; see kv_cache.h.
#include "model/kv_cache.h"

#include <string>

#include "core/error.h"

namespace kiln::model {

KVCache::KVCache(const CacheShape& shape, int64_t slots, int64_t capacity)
    : n_layer_(shape.n_layer), n_kv_head_(shape.n_kv_head), head_dim_(shape.head_dim),
      capacity_(std::max<int64_t>(1, capacity)), len_(static_cast<size_t>(std::max<int64_t>(0, slots)), 0) {}

void KVCache::truncate(int64_t slot, int64_t n) {
  auto& l = len_.at(static_cast<size_t>(slot));
  TORCH_CHECK(n >= 0 && n <= l, "KVCache::truncate: ", n, " is not within the slot's ", l, " tokens");
  l = n;
}

void KVCache::add_slots(int64_t n) { resize(slots() + n, capacity_); }

void KVCache::reserve(int64_t t) {
  if (t <= capacity_) return;
  resize(slots(), std::max(t, 2 * capacity_));  // doubling: amortised O(1) growth while decoding
}

void KVCache::resize(int64_t slots, int64_t capacity) {
  len_.resize(static_cast<size_t>(slots), 0);
  const int64_t old_cap = capacity_;
  capacity_ = capacity;
  if (k_.empty()) return;  // nothing allocated yet
  for (auto* store : {&k_, &v_})
    for (auto& t : *store) {
      auto n = torch::zeros({slots, capacity, n_kv_head_, head_dim_}, t.options());
      const int64_t s = std::min(slots, t.size(0));
      n.narrow(0, 0, s).narrow(1, 0, std::min(old_cap, capacity)).copy_(t.narrow(0, 0, s).narrow(1, 0, std::min(old_cap, capacity)));
      t = n;
    }
}

// Note [Cached attention]: one mask covers prefill, decode and ragged rows: query i of row b sits
// at position p = length(slot_b) + i and may see keys 0..p. Padding queries (i >= n_tokens[b])
// compute garbage that is never read back: their keys are not written to the cache and their
// logits are not returned. No query row is ever fully masked (key 0 is always visible).
CachedStep::CachedStep(KVCache& cache, const std::vector<int64_t>& n_tokens, const std::vector<int64_t>& slots,
                       int64_t T, int64_t max_positions, const torch::Device& dev)
    : cache_(cache), n_tokens_(n_tokens), slots_(slots), B_(static_cast<int64_t>(n_tokens.size())), T_(T) {
  TORCH_CHECK(slots.size() == n_tokens.size(), "forward_cached: one n_tokens and one slot per row");
  const int64_t B = B_;
  pos0_.resize(static_cast<size_t>(B));
  int64_t n_valid = 0;
  std::vector<char> seen(static_cast<size_t>(cache.slots()), 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t s = slots[b], n = n_tokens[b];
    TORCH_CHECK(s >= 0 && s < cache.slots() && !seen[s], "forward_cached: bad or repeated slot ", s);
    seen[s] = 1;
    TORCH_CHECK(n >= 1 && n <= T, "forward_cached: n_tokens ", n, " not in 1..", T);
    pos0_[b] = cache.length(s);
    if (pos0_[b] + n > max_positions)
      throw Error("generation: a sequence of " + std::to_string(pos0_[b] + n) + " tokens exceeds the model's " +
                      std::to_string(max_positions) + " positions",
                  "shorten the prompt or lower max_new_tokens");
    t_keys_ = std::max(t_keys_, pos0_[b] + n);
    n_valid += n;
  }
  cache.reserve(t_keys_);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  pos_ = (torch::tensor(pos0_, i64).view({B, 1}) + torch::arange(T, i64).view({1, T}))
             .clamp_max(max_positions - 1)
             .to(dev);
  all_full_ = n_valid == B * T;
  // Rows are usually consecutive slots in order (0..B-1, or a server's run of busy slots): then the
  // cache is read by a view, not a gather.
  bool same_start = true;
  slot0_ = slots.empty() ? 0 : slots[0];
  for (int64_t b = 0; b < B; ++b)
    identity_ = identity_ && slots[b] == slot0_ + b, same_start = same_start && pos0_[b] == pos0_[0];
  // Fast path (generate() without ragged rows, and every decode step of equal-length rows): the
  // chunk is written by a slice copy and needs no mask (decode: every key is visible; prefill of
  // empty slots: plain causal attention).
  uniform_ = identity_ && same_start && all_full_;
  no_mask_ = uniform_ && (T == 1 || pos0_[0] == 0);
  if (!uniform_) {
    // The (row, time) pairs written to the cache: every row's first n_tokens[b] tokens.
    std::vector<int64_t> w_row, w_t, w_slot, w_pos;
    w_row.reserve(static_cast<size_t>(n_valid));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < n_tokens[b]; ++i)
        w_row.push_back(b), w_t.push_back(i), w_slot.push_back(slots[b]), w_pos.push_back(pos0_[b] + i);
    t_row_ = torch::tensor(w_row, i64).to(dev), t_t_ = torch::tensor(w_t, i64).to(dev);
    t_slot_ = torch::tensor(w_slot, i64).to(dev), t_pos_ = torch::tensor(w_pos, i64).to(dev);
  }
  if (!identity_) slot_idx_ = torch::tensor(slots, i64).to(dev);
  if (!no_mask_) mask_ = torch::arange(t_keys_, i64).to(dev).view({1, 1, 1, t_keys_}) <= pos_.view({B, 1, T, 1});
}

torch::Tensor CachedStep::attend(size_t layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  auto& C = cache_;
  const int64_t B = B_, T = T_, Hkv = C.n_kv_head_, D = C.head_dim_;
  TORCH_CHECK(k.size(2) == Hkv && k.size(3) == D, "CachedStep: keys do not match the cache's shape");
  if (C.k_.empty()) {
    C.k_.resize(static_cast<size_t>(C.n_layer_));
    C.v_.resize(static_cast<size_t>(C.n_layer_));
    for (size_t j = 0; j < C.k_.size(); ++j) {
      C.k_[j] = torch::zeros({C.slots(), C.capacity(), Hkv, D}, k.options());
      C.v_[j] = torch::zeros_like(C.k_[j]);
    }
  }
  auto& kc = C.k_.at(layer);
  auto& vc = C.v_.at(layer);
  if (uniform_) {
    kc.narrow(0, slot0_, B).narrow(1, pos0_[0], T).copy_(k);
    vc.narrow(0, slot0_, B).narrow(1, pos0_[0], T).copy_(v);
  } else {
    auto kw = all_full_ ? k.reshape({B * T, Hkv, D}) : k.index({t_row_, t_t_});
    auto vw = all_full_ ? v.reshape({B * T, Hkv, D}) : v.index({t_row_, t_t_});
    kc.index_put_({t_slot_, t_pos_}, kw.to(kc.scalar_type()));
    vc.index_put_({t_slot_, t_pos_}, vw.to(vc.scalar_type()));
  }
  // Only the keys some row can see (t_keys_), and only then gathered: a gather of the whole
  // capacity copied up to twice the live keys per layer and step.
  auto K = kc.narrow(1, 0, t_keys_), V = vc.narrow(1, 0, t_keys_);
  K = identity_ ? K.narrow(0, slot0_, B) : K.index_select(0, slot_idx_);
  V = identity_ ? V.narrow(0, slot0_, B) : V.index_select(0, slot_idx_);
  K = K.transpose(1, 2).to(q.scalar_type());
  V = V.transpose(1, 2).to(q.scalar_type());
  const bool gqa = q.size(2) != Hkv;
  if (no_mask_)
    return at::scaled_dot_product_attention(q.transpose(1, 2), K, V, {}, 0.0, /*is_causal=*/T > 1, std::nullopt, gqa);
  return at::scaled_dot_product_attention(q.transpose(1, 2), K, V, mask_, 0.0, /*is_causal=*/false, std::nullopt, gqa);
}

torch::Tensor CachedStep::last_rows(const torch::Tensor& x) const {
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  std::vector<int64_t> last(static_cast<size_t>(B_));
  for (int64_t b = 0; b < B_; ++b) last[b] = n_tokens_[b] - 1;
  return x.index({torch::arange(B_, i64).to(x.device()), torch::tensor(last, i64).to(x.device())});
}

void CachedStep::commit() {
  TORCH_CHECK(!committed_, "CachedStep::commit called twice");
  committed_ = true;
  for (int64_t b = 0; b < B_; ++b) cache_.len_[static_cast<size_t>(slots_[b])] += n_tokens_[b];
}

}  // namespace kiln::model
