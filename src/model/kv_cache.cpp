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
  if (tok_.defined()) {
    auto n = torch::full({slots, capacity}, -1, tok_.options());
    const int64_t s = std::min(slots, tok_.size(0)), c = std::min(old_cap, capacity);
    n.narrow(0, 0, s).narrow(1, 0, c).copy_(tok_.narrow(0, 0, s).narrow(1, 0, c));
    tok_ = n;
  }
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

torch::Tensor CachedStep::attend(size_t layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 int64_t window) {
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
  const bool gqa = q.size(2) != Hkv;
  // Note [Cached windows]: the deepest query sits at t_keys-1; when it is within `window` of key 0
  // every query sees all its causal keys and the window changes nothing. Otherwise only keys from
  // k_lo = min over rows of (first position - window) can be visible: the rest is not read, and a
  // band mask (key <= p and key >= p - window) covers what is.
  if (window >= 0 && t_keys_ - 1 > window) {
    auto it = window_masks_.find(window);
    if (it == window_masks_.end()) {
      int64_t k_lo = t_keys_;
      for (int64_t b = 0; b < B; ++b) k_lo = std::min(k_lo, std::max<int64_t>(0, pos0_[b] - window));
      // Decode of equal rows (T = 1, one start): every key read is visible, no mask.
      torch::Tensor m;
      if (!(uniform_ && T == 1)) {
        auto keys = torch::arange(k_lo, t_keys_, torch::TensorOptions().dtype(torch::kInt64).device(q.device()))
                        .view({1, 1, 1, t_keys_ - k_lo});
        auto p = pos_.view({B, 1, T, 1});
        m = keys.le(p).logical_and_(keys.ge(p - window));
      }
      it = window_masks_.emplace(window, std::make_pair(k_lo, m)).first;
    }
    const int64_t k_lo = it->second.first;
    K = K.narrow(1, k_lo, t_keys_ - k_lo).transpose(1, 2).to(q.scalar_type());
    V = V.narrow(1, k_lo, t_keys_ - k_lo).transpose(1, 2).to(q.scalar_type());
    const auto& m = it->second.second;
    return at::scaled_dot_product_attention(q.transpose(1, 2), K, V,
                                            m.defined() ? std::optional<at::Tensor>(m) : std::nullopt, 0.0,
                                            /*is_causal=*/false, std::nullopt, gqa);
  }
  K = K.transpose(1, 2).to(q.scalar_type());
  V = V.transpose(1, 2).to(q.scalar_type());
  if (no_mask_)
    return at::scaled_dot_product_attention(q.transpose(1, 2), K, V, {}, 0.0, /*is_causal=*/T > 1, std::nullopt, gqa);
  return at::scaled_dot_product_attention(q.transpose(1, 2), K, V, mask_, 0.0, /*is_causal=*/false, std::nullopt, gqa);
}

torch::Tensor CachedStep::previous_tokens(const torch::Tensor& idx) {
  TORCH_CHECK(idx.dim() == 2 && idx.size(0) == B_ && idx.size(1) == T_, "previous_tokens: idx must be (B, T)");
  auto& C = cache_;
  if (!C.tok_.defined()) C.tok_ = torch::full({C.slots(), C.capacity()}, -1, idx.options());
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  std::vector<int64_t> before(static_cast<size_t>(B_)), start(static_cast<size_t>(B_));
  for (int64_t b = 0; b < B_; ++b) before[b] = std::max<int64_t>(0, pos0_[b] - 1), start[b] = pos0_[b];
  // The token before each row's first: the slot's last cached one (read before this chunk is written).
  auto first = C.tok_.index({torch::tensor(slots_, i64).to(idx.device()), torch::tensor(before, i64).to(idx.device())});
  first = torch::where(torch::tensor(start, i64).to(idx.device()).eq(0), torch::full_like(first, -1), first);
  for (int64_t b = 0; b < B_; ++b)
    C.tok_[slots_[b]].narrow(0, pos0_[b], n_tokens_[b]).copy_(idx[b].narrow(0, 0, n_tokens_[b]));
  return torch::cat({first.view({B_, 1}), idx.narrow(1, 0, T_ - 1)}, 1);
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
