// A seeded random permutation of [0, n) evaluated one index at a time, in O(1) memory.
//
// The loader shuffles every epoch of a dataset of possibly billions of samples; storing the
// permutation would cost 8 bytes a sample per epoch. Instead a balanced Feistel network over the
// smallest even power of two >= n is a bijection of that domain, and "cycle walking" (re-applying
// it until the value falls below n) restricts it to a bijection of [0, n). The domain is at most
// 4n, so a lookup takes a few network evaluations on average.
#pragma once

#include <cstdint>

namespace fm::data {

class IndexPermutation {
 public:
  IndexPermutation(int64_t n, uint64_t seed);
  int64_t size() const { return n_; }
  // The image of i, for 0 <= i < n.
  int64_t operator()(int64_t i) const;

 private:
  static constexpr int kRounds = 6;
  uint64_t encrypt(uint64_t x) const;
  int64_t n_;
  int half_bits_ = 1;
  uint64_t half_mask_ = 1;
  uint64_t keys_[kRounds] = {};
};

}  // namespace fm::data
