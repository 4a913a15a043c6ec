// KVCache storage; see kv_cache.h. The attention over it is in gpt.cpp (forward_cached).
#include "model/kv_cache.h"

namespace kiln::model {

KVCache::KVCache(const GPTConfig& cfg, int64_t slots, int64_t capacity)
    : n_layer_(cfg.n_layer), n_kv_head_(cfg.n_kv_head), head_dim_(cfg.head_dim),
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

}  // namespace kiln::model
