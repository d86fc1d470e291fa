// Fast, stable 64-bit hashing and seeded random numbers for the data pipeline.
//
// Everything the data pipeline derives from a seed or a file's content (shuffles, blend order,
// cache keys) goes through these functions, so results are identical on every platform and
// standard library (std::shuffle and the <random> distributions are not).
// Not cryptographic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fm::data {

// A bijective avalanche of 64 bits (the SplitMix64 finalizer).
uint64_t mix64(uint64_t x);

// Combines a running hash with one more value.
inline uint64_t hash_combine(uint64_t h, uint64_t v) { return mix64(h ^ mix64(v + 0x9e3779b97f4a7c15ULL)); }

// Incremental hash of a byte stream; the result depends only on the bytes, not on how they were
// cut into update() calls.
class StreamHasher {
 public:
  explicit StreamHasher(uint64_t seed = 0);
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  uint64_t digest() const;

 private:
  void absorb(uint64_t word);
  uint64_t state_;
  uint64_t length_ = 0;
  uint8_t pending_[8] = {};
  size_t npending_ = 0;
};

uint64_t hash_bytes(std::string_view bytes, uint64_t seed = 0);
// Hash of a whole file's content; an unreadable file is an InputError naming it.
uint64_t hash_file(const std::string& path);
std::string hex64(uint64_t v);

// SplitMix64: a tiny generator with a 64-bit state, enough for shuffles and synthetic text.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return mix64(state_ += 0x9e3779b97f4a7c15ULL); }
  // Uniform in [0, n) for n > 0 (Lemire's multiply-shift with rejection: unbiased).
  uint64_t below(uint64_t n);

 private:
  uint64_t state_;
};

}  // namespace fm::data
