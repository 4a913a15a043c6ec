// Incremental BPE training (the rustbpe algorithm, written from its description): words are the
// distinct chunks with their counts; merging a pair edits only the words that hold it and applies
// the resulting pair-count deltas, so one merge costs in proportion to where the pair occurs.
#include "tokenizer/bpe_train.h"

#include <algorithm>
#include <queue>

#include "tokenizer/pair_map.h"
#include "tokenizer/split.h"

namespace kiln::tok {

void count_chunks(const Splitter& splitter, std::string_view text, ChunkCounts& counts) {
  splitter.split(text, [&](std::string_view c) { ++counts[std::string(c)]; });
}

void merge_counts(ChunkCounts& into, ChunkCounts&& from) {
  if (into.empty()) { into = std::move(from); return; }
  for (auto& [k, v] : from) into[k] += v;
}

namespace {

struct Word {
  std::vector<uint32_t> ids;
  int64_t count;
};

// Note [BPE ties]: the heap orders by count, then by the smaller pair. Entries are lazy: a popped
// entry whose count is stale is pushed back with the current count. Counts of existing pairs only
// fall (merges consume them), and new pairs are pushed with their final count, so every stored
// count bounds the true one from above and the first fresh entry popped is the true maximum.
struct HeapItem {
  int64_t count;
  uint64_t pair;
  bool operator<(const HeapItem& o) const {
    return count != o.count ? count < o.count : pair > o.pair;  // max count, then min pair
  }
};

// Replace each non-overlapping (a, b), left to right, by `id`; report pair-count deltas (times 1).
void merge_word(std::vector<uint32_t>& w, uint32_t a, uint32_t b, uint32_t id,
                std::vector<std::pair<uint64_t, int64_t>>& delta) {
  std::vector<uint32_t> out;
  out.reserve(w.size());
  size_t n = w.size();
  for (size_t i = 0; i < n;) {
    if (i + 1 < n && w[i] == a && w[i + 1] == b) {
      // Deltas telescope correctly across adjacent merges: a (prev, a) removed here that was
      // added as (X, a) by the previous merge cancels out.
      if (!out.empty()) {
        delta.emplace_back(pair_key(out.back(), a), -1);
        delta.emplace_back(pair_key(out.back(), id), +1);
      }
      delta.emplace_back(pair_key(a, b), -1);
      if (i + 2 < n) {
        delta.emplace_back(pair_key(b, w[i + 2]), -1);
        delta.emplace_back(pair_key(id, w[i + 2]), +1);
      }
      out.push_back(id);
      i += 2;
    } else {
      out.push_back(w[i++]);
    }
  }
  w.swap(out);
}

}  // namespace

std::vector<Merge> train_bpe(const ChunkCounts& counts, uint32_t num_merges,
                             const std::function<void(uint32_t, uint32_t)>& progress) {
  // Words in a fixed order (sorted chunk bytes) so that nothing depends on hash-map iteration.
  std::vector<std::pair<std::string_view, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (auto& [s, c] : sorted) {
    if (s.size() < 2) continue;  // a single byte holds no pair
    Word w{{}, c};
    for (unsigned char ch : s) w.ids.push_back(ch);
    words.push_back(std::move(w));
  }
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;
  for (uint32_t wi = 0; wi < words.size(); ++wi) {
    const auto& w = words[wi];
    for (size_t i = 0; i + 1 < w.ids.size(); ++i) {
      uint64_t k = pair_key(w.ids[i], w.ids[i + 1]);
      pair_count[k] += w.count;
      auto& v = where[k];
      if (v.empty() || v.back() != wi) v.push_back(wi);
    }
  }
  std::priority_queue<HeapItem> heap;
  for (auto& [k, c] : pair_count) heap.push({c, k});

  std::vector<Merge> merges;
  std::vector<std::pair<uint64_t, int64_t>> delta;
  std::unordered_map<uint64_t, int64_t> grown;  // pairs that gained count in this merge
  while (merges.size() < num_merges && !heap.empty()) {
    HeapItem top = heap.top();
    heap.pop();
    auto it = pair_count.find(top.pair);
    int64_t now = it == pair_count.end() ? 0 : it->second;
    if (now != top.count) {
      if (now > 0) heap.push({now, top.pair});
      continue;
    }
    if (now <= 0) break;
    uint32_t a = uint32_t(top.pair >> 32), b = uint32_t(top.pair), id = 256 + uint32_t(merges.size());
    merges.emplace_back(a, b);
    std::vector<uint32_t> holders = std::move(where[top.pair]);
    where.erase(top.pair);
    std::sort(holders.begin(), holders.end());
    holders.erase(std::unique(holders.begin(), holders.end()), holders.end());
    grown.clear();
    for (uint32_t wi : holders) {
      auto& w = words[wi];
      delta.clear();
      merge_word(w.ids, a, b, id, delta);
      for (auto [k, d] : delta) {
        pair_count[k] += d * w.count;
        if (d > 0) {
          grown[k] = 1;
          auto& v = where[k];
          if (v.empty() || v.back() != wi) v.push_back(wi);
        }
      }
    }
    pair_count.erase(top.pair);
    // Push grown pairs in key order so the heap's contents never depend on hash order.
    std::vector<uint64_t> keys;
    for (auto& [k, _] : grown) keys.push_back(k);
    std::sort(keys.begin(), keys.end());
    for (uint64_t k : keys)
      if (auto c = pair_count[k]; c > 0) heap.push({c, k});
    if (progress && (merges.size() % 1000 == 0 || merges.size() == num_merges))
      progress(uint32_t(merges.size()), num_merges);
  }
  return merges;
}

}  // namespace kiln::tok
