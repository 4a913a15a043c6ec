// Python's `random.Random` (CPython 3.x: MT19937 seeded by init_by_array from the integer's 32-bit
// words) with the three calls nanochat's CORE makes: shuffle, sample and the _randbelow under
// them. CORE's subsampling (Random(1337).shuffle) and its few-shot draw (Random(1234 + idx).sample)
// are defined by these exact sequences, so kiln must draw the same numbers, not merely random ones.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace kiln::eval {

class PyRandom {
 public:
  // random.Random(seed) for a non-negative integer seed below 2^64.
  explicit PyRandom(uint64_t seed);

  uint32_t genrand_uint32();
  // random.getrandbits(k), 0 <= k <= 32.
  uint32_t getrandbits(int k);
  // random._randbelow(n): uniform in [0, n), n >= 1 (rejection sampling on bit_length(n) bits).
  uint64_t randbelow(uint64_t n);
  // random.shuffle(x): in place, Fisher-Yates from the end.
  template <class T>
  void shuffle(std::vector<T>& x) {
    for (size_t i = x.size(); i-- > 1;) {
      const size_t j = randbelow(i + 1);
      std::swap(x[i], x[j]);
    }
  }
  // random.sample(population, k) for population = `pop`: k distinct elements, in selection order.
  // Both of CPython's branches (a pool for small populations, a set of drawn indices otherwise)
  // draw different numbers, so both are kept. Requires 0 <= k <= pop.size().
  std::vector<int64_t> sample(const std::vector<int64_t>& pop, int64_t k);

 private:
  std::array<uint32_t, 624> mt_{};
  int index_ = 624;
};

}  // namespace kiln::eval
