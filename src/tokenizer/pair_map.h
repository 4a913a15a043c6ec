// Open-addressing hash map from a token pair (a, b) to a 32-bit value (a merge's rank). Encoding
// looks up a pair for every adjacent token of every chunk, so this sits on the hot path; a flat
// table with linear probing is several times faster than std::unordered_map here.
#pragma once
#include <cstdint>
#include <vector>

namespace kiln::tok {

inline uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t(a) << 32) | b; }

class PairMap {
 public:
  static constexpr uint32_t kMissing = 0xffffffffu;
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, 0);
    mask_ = cap - 1;
  }
  void insert(uint64_t key, uint32_t val) {
    size_t i = slot(key);
    while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
    keys_[i] = key;
    vals_[i] = val;
  }
  uint32_t find(uint64_t key) const {
    if (keys_.empty()) return kMissing;
    size_t i = slot(key);
    while (true) {
      uint64_t k = keys_[i];
      if (k == key) return vals_[i];
      if (k == kEmpty) return kMissing;
      i = (i + 1) & mask_;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  size_t slot(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> 20) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> vals_;
  size_t mask_ = 0;
};

}  // namespace kiln::tok
