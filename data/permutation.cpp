#include "data/permutation.h"

#include "data/hash.h"
#include "runtime/base/error.h"

namespace fm::data {

IndexPermutation::IndexPermutation(int64_t n, uint64_t seed) : n_(n) {
  FM_CHECK(n >= 0, "permutation size must be non-negative");
  int bits = 2;
  while (bits < 62 && (uint64_t{1} << bits) < static_cast<uint64_t>(n)) bits += 2;
  half_bits_ = bits / 2;
  half_mask_ = (uint64_t{1} << half_bits_) - 1;
  Rng rng(hash_combine(seed, 0x7065726d75746174ULL));
  for (auto& k : keys_) k = rng.next();
}

uint64_t IndexPermutation::encrypt(uint64_t x) const {
  uint64_t left = x >> half_bits_, right = x & half_mask_;
  for (uint64_t key : keys_) {
    uint64_t next = left ^ (mix64(right ^ key) & half_mask_);
    left = right;
    right = next;
  }
  return left << half_bits_ | right;
}

int64_t IndexPermutation::operator()(int64_t i) const {
  FM_CHECK(i >= 0 && i < n_, "permutation index out of range");
  uint64_t x = static_cast<uint64_t>(i);
  do x = encrypt(x);
  while (x >= static_cast<uint64_t>(n_));
  return static_cast<int64_t>(x);
}

}  // namespace fm::data
