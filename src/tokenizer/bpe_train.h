// BPE training on chunk counts. Text is split and each distinct chunk counted once (in parallel,
// per-thread maps); merges are then found incrementally: pair counts and the chunks holding each
// pair are kept up to date per merge, and a max-heap with lazy re-checks picks the next pair.
// Tie rule (see Note [BPE ties]): the highest count wins; equal counts go to the smallest pair
// (first id, then second id). The result depends only on the counts, so it is deterministic.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace kiln::tok {

using ChunkCounts = std::unordered_map<std::string, int64_t>;

class Splitter;

// Split `text` and add its chunks to `counts`.
void count_chunks(const Splitter& splitter, std::string_view text, ChunkCounts& counts);
// Add `from` into `into` (used to combine per-thread counts).
void merge_counts(ChunkCounts& into, ChunkCounts&& from);

// Up to num_merges merges in rank order (fewer when no pair occurs twice... or at all).
// progress(done, total) is called now and then.
std::vector<Merge> train_bpe(const ChunkCounts& counts, uint32_t num_merges,
                             const std::function<void(uint32_t, uint32_t)>& progress = {});

}  // namespace kiln::tok
