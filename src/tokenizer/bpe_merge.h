// Applies BPE merges to one chunk's token ids: the lowest-ranked adjacent pair first, leftmost on
// ties. Short chunks (nearly all) use a plain scan; long ones a linked list with a min-heap of
// merge ranks (each with its pair positions), so one unbroken megabyte of letters costs about
// O(n log n), not O(n^2) (tiktoken/rustbpe also use a heap + linked list).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tokenizer/pair_map.h"

namespace kiln::tok {

// Chunks at least this long take the heap path (below it the scan is faster).
inline constexpr size_t kHeapMergeMin = 256;

// Merges ids[0, n) in place; returns the new length. `ops`, when given, is increased by the
// elementary steps taken (pairs scanned, or pair entries taken from the queue): a time-independent cost measure.
size_t bpe_merge(std::vector<uint32_t>& ids, size_t n, const PairMap& ranks, uint64_t* ops = nullptr);
// The two algorithms behind it, for tests that compare them.
size_t bpe_merge_scan(std::vector<uint32_t>& ids, size_t n, const PairMap& ranks, uint64_t* ops = nullptr);
size_t bpe_merge_heap(std::vector<uint32_t>& ids, size_t n, const PairMap& ranks, uint64_t* ops = nullptr);

}  // namespace kiln::tok
