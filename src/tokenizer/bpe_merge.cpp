// BPE merge of one chunk (see bpe_merge.h). The long-chunk path keeps, per merge rank, the left
// positions of pairs with that rank, and a min-heap of the ranks present. Merging with rank r only
// creates pairs of rank > r (a merge uses earlier tokens only), so a rank's bucket is final when
// its turn comes: sorted, it is merged leftmost first, exactly as the scan would. Entries whose
// pair changed since are recognised and dropped. The heap holds ranks, not positions, so it stays
// in cache however long the chunk.
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
  // One node per byte with its token and both links side by side: a merge touches two nodes,
  // two cache lines, which is what bounds the time once a chunk outgrows the cache.
  struct Node {
    uint32_t id, prev, next;
  };
  thread_local std::vector<Node> node;
  thread_local std::vector<uint32_t> cur;
  thread_local std::vector<std::vector<uint32_t>> bucket;  // rank -> left positions of pairs
  thread_local std::vector<uint32_t> live;                 // min-heap of ranks with a bucket
  node.resize(n);
  live.clear();
  for (size_t i = 0; i < n; ++i)
    node[i] = {ids[i], i == 0 ? kNone : uint32_t(i - 1), i + 1 == n ? kNone : uint32_t(i + 1)};
  auto add = [&](uint32_t left, uint32_t a, uint32_t b) {
    const uint32_t r = ranks.find(pair_key(a, b));
    if (r == PairMap::kMissing) return;
    if (r >= bucket.size()) bucket.resize(size_t(r) + 1);
    if (bucket[r].empty()) {
      live.push_back(r);
      std::push_heap(live.begin(), live.end(), std::greater<>());
    }
    bucket[r].push_back(left);
  };
  for (size_t i = 0; i + 1 < n; ++i) add(uint32_t(i), ids[i], ids[i + 1]);
  uint64_t steps = 0;
  while (!live.empty()) {
    std::pop_heap(live.begin(), live.end(), std::greater<>());
    const uint32_t r = live.back();
    live.pop_back();
    cur.swap(bucket[r]);  // merging adds only ranks > r, so this bucket is final now
    std::sort(cur.begin(), cur.end());  // leftmost first, as the scan
    const uint32_t merged = 256 + r;
    for (const uint32_t at : cur) {
      ++steps;
      // Stale when `at` was absorbed into its left neighbour or its pair is no longer rank r.
      Node& x = node[at];
      if (x.id == kNone || x.next == kNone) continue;
      Node& y = node[x.next];
      if (ranks.find(pair_key(x.id, y.id)) != r) continue;
      x.id = merged;
      y.id = kNone;
      x.next = y.next;
      if (x.next != kNone) {
        Node& z = node[x.next];
        z.prev = at;
        add(at, merged, z.id);
      }
      if (x.prev != kNone) add(x.prev, node[x.prev].id, merged);
    }
    cur.clear();
  }
  size_t m = 0;
  for (uint32_t i = 0; i != kNone; i = node[i].next) ids[m++] = node[i].id;
  if (ops) *ops += steps;
  return m;
}

size_t bpe_merge(std::vector<uint32_t>& ids, size_t n, const PairMap& ranks, uint64_t* ops) {
  if (n < 2) return n;
  return n < kHeapMergeMin ? bpe_merge_scan(ids, n, ranks, ops) : bpe_merge_heap(ids, n, ranks, ops);
}

}  // namespace kiln::tok
