// BPE merge of one chunk (see bpe_merge.h). The heap holds (rank, position) keys and is never
// updated in place: an entry whose pair has since changed is recognised on pop and dropped, so
// both algorithms pick the same pair at every step and give identical output.
#include "tokenizer/bpe_merge.h"

#include <algorithm>
#include <functional>

namespace kiln::tok {

size_t bpe_merge_scan(std::vector<uint32_t>& ids, size_t n, const PairMap& ranks, uint64_t* ops) {
  thread_local std::vector<uint32_t> rk;
  rk.resize(n);
  uint64_t steps = 0;
  for (size_t i = 0; i + 1 < n; ++i) rk[i] = ranks.find(pair_key(ids[i], ids[i + 1]));
  while (n > 1) {
    uint32_t best = PairMap::kMissing;
    size_t at = 0;
    for (size_t i = 0; i + 1 < n; ++i)
      if (rk[i] < best) { best = rk[i]; at = i; }
    steps += n;
    if (best == PairMap::kMissing) break;
    ids[at] = 256 + best;
    for (size_t i = at + 1; i + 1 < n; ++i) { ids[i] = ids[i + 1]; rk[i] = rk[i + 1]; }
    --n;
    if (at + 1 < n) rk[at] = ranks.find(pair_key(ids[at], ids[at + 1]));
    if (at > 0) rk[at - 1] = ranks.find(pair_key(ids[at - 1], ids[at]));
  }
  if (ops) *ops += steps;
  return n;
}

size_t bpe_merge_heap(std::vector<uint32_t>& ids, size_t n, const PairMap& ranks, uint64_t* ops) {
  constexpr uint32_t kNone = 0xffffffffu;
  thread_local std::vector<uint32_t> prev, next;
  thread_local std::vector<uint64_t> heap;  // (rank << 32) | left position; min-heap
  prev.resize(n);
  next.resize(n);
  heap.clear();
  for (size_t i = 0; i < n; ++i) {
    prev[i] = i == 0 ? kNone : uint32_t(i - 1);
    next[i] = i + 1 == n ? kNone : uint32_t(i + 1);
  }
  auto push = [&](uint32_t left) {
    uint32_t r = ranks.find(pair_key(ids[left], ids[next[left]]));
    if (r == PairMap::kMissing) return;
    heap.push_back((uint64_t(r) << 32) | left);
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (size_t i = 0; i + 1 < n; ++i) {
    uint32_t r = ranks.find(pair_key(ids[i], ids[i + 1]));
    if (r != PairMap::kMissing) heap.push_back((uint64_t(r) << 32) | i);
  }
  std::make_heap(heap.begin(), heap.end(), std::greater<>());
  uint64_t steps = 0;
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const uint64_t top = heap.back();
    heap.pop_back();
    ++steps;
    const uint32_t r = uint32_t(top >> 32), at = uint32_t(top);
    // Stale when `at` was absorbed into its left neighbour or its pair is no longer rank r.
    if (ids[at] == kNone || next[at] == kNone) continue;
    const uint32_t right = next[at];
    if (ranks.find(pair_key(ids[at], ids[right])) != r) continue;
    ids[at] = 256 + r;
    ids[right] = kNone;
    next[at] = next[right];
    if (next[at] != kNone) prev[next[at]] = at;
    if (prev[at] != kNone) push(prev[at]);
    if (next[at] != kNone) push(at);
  }
  size_t m = 0;
  for (uint32_t i = 0; i != kNone; i = next[i]) ids[m++] = ids[i];
  if (ops) *ops += steps;
  return m;
}

size_t bpe_merge(std::vector<uint32_t>& ids, size_t n, const PairMap& ranks, uint64_t* ops) {
  if (n < 2) return n;
  return n < kHeapMergeMin ? bpe_merge_scan(ids, n, ranks, ops) : bpe_merge_heap(ids, n, ranks, ops);
}

}  // namespace kiln::tok
