// Python's random.Random, from CPython's _randommodule.c (genrand_uint32, init_genrand,
// init_by_array, random_seed, getrandbits) and Lib/random.py (_randbelow_with_getrandbits,
// shuffle, sample); see py_random.h.
#include "eval/py_random.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <unordered_set>

namespace kiln::eval {
namespace {
constexpr int kN = 624, kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfU, kUpper = 0x80000000U, kLower = 0x7fffffffU;

int bit_length(uint64_t n) {
  int k = 0;
  for (; n; n >>= 1) ++k;
  return k;
}
}  // namespace

PyRandom::PyRandom(uint64_t seed) {
  // random_seed(): the absolute value's 32-bit words, least significant first ([0] for 0).
  std::vector<uint32_t> key = {static_cast<uint32_t>(seed)};
  if (seed >> 32) key.push_back(static_cast<uint32_t>(seed >> 32));
  // init_genrand(19650218), then init_by_array(key).
  mt_[0] = 19650218U;
  for (int i = 1; i < kN; ++i) mt_[i] = 1812433253U * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  int i = 1;
  size_t j = 0;
  for (size_t k = std::max<size_t>(kN, key.size()); k; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525U)) + key[j] + static_cast<uint32_t>(j);
    ++i, ++j;
    if (i >= kN) mt_[0] = mt_[kN - 1], i = 1;
    if (j >= key.size()) j = 0;
  }
  for (int k = kN - 1; k; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941U)) - static_cast<uint32_t>(i);
    ++i;
    if (i >= kN) mt_[0] = mt_[kN - 1], i = 1;
  }
  mt_[0] = 0x80000000U;
  index_ = kN;
}

uint32_t PyRandom::genrand_uint32() {
  if (index_ >= kN) {
    int kk = 0;
    auto twist = [&](int a, int b, int c) {
      const uint32_t y = (mt_[a] & kUpper) | (mt_[b] & kLower);
      mt_[a] = mt_[c] ^ (y >> 1) ^ ((y & 1U) ? kMatrixA : 0U);
    };
    for (; kk < kN - kM; ++kk) twist(kk, kk + 1, kk + kM);
    for (; kk < kN - 1; ++kk) twist(kk, kk + 1, kk + (kM - kN));
    twist(kN - 1, 0, kM - 1);
    index_ = 0;
  }
  uint32_t y = mt_[index_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  y ^= y >> 18;
  return y;
}

uint32_t PyRandom::getrandbits(int k) {
  if (k <= 0) return 0;
  return genrand_uint32() >> (32 - k);
}

uint64_t PyRandom::randbelow(uint64_t n) {
  if (n == 0) throw std::invalid_argument("PyRandom::randbelow(0)");
  const int k = bit_length(n);
  auto bits = [&]() -> uint64_t {  // getrandbits(k): 32-bit words, least significant first
    if (k <= 32) return getrandbits(k);
    const uint64_t lo = genrand_uint32();
    return lo | (static_cast<uint64_t>(genrand_uint32() >> (64 - k)) << 32);
  };
  uint64_t r = bits();
  while (r >= n) r = bits();
  return r;
}

std::vector<int64_t> PyRandom::sample(const std::vector<int64_t>& pop, int64_t k) {
  const int64_t n = static_cast<int64_t>(pop.size());
  if (k < 0 || k > n) throw std::invalid_argument("PyRandom::sample: sample larger than population or is negative");
  std::vector<int64_t> result(k);
  int64_t setsize = 21;  // "size of a small set minus size of an empty list"
  if (k > 5) setsize += static_cast<int64_t>(std::pow(4.0, std::ceil(std::log(k * 3.0) / std::log(4.0))));
  if (n <= setsize) {
    std::vector<int64_t> pool = pop;
    for (int64_t i = 0; i < k; ++i) {
      const int64_t j = static_cast<int64_t>(randbelow(n - i));
      result[i] = pool[j];
      pool[j] = pool[n - i - 1];
    }
  } else {
    std::unordered_set<int64_t> selected;
    for (int64_t i = 0; i < k; ++i) {
      int64_t j = static_cast<int64_t>(randbelow(n));
      while (selected.count(j)) j = static_cast<int64_t>(randbelow(n));
      selected.insert(j);
      result[i] = pop[j];
    }
  }
  return result;
}

}  // namespace kiln::eval
