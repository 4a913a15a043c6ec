// Numbers as text the same way everywhere: floats with 9 significant digits (metrics.jsonl, the
// report card) and compact durations (the training ETA, ./eval's progress line).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

// "1h02m", "3m07s", "12s".
std::string format_duration(double seconds);
// A float as text with 9 significant digits (exact round trip for float32).
std::string f9(double v);
// Bytes per rank as "rank 0 1.234 MB, rank 1 0.567 MB" (the optimizer memory and resume logs).
std::string per_rank_mb(const std::vector<int64_t>& bytes);

}  // namespace kiln
