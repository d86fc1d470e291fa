#include "data/hash.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "runtime/base/error.h"

namespace fm::data {

uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

StreamHasher::StreamHasher(uint64_t seed) : state_(mix64(seed ^ 0x6a09e667f3bcc909ULL)) {}

void StreamHasher::absorb(uint64_t word) {
  // One multiply and rotate per 8 bytes keeps hashing far faster than reading from disk.
  state_ ^= word * 0x9fb21c651e98df25ULL;
  state_ = (state_ << 29 | state_ >> 35) * 0xc2b2ae3d27d4eb4fULL;
}

void StreamHasher::update(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  length_ += n;
  if (npending_) {
    const size_t take = std::min(n, sizeof pending_ - npending_);
    std::memcpy(pending_ + npending_, p, take);
    npending_ += take;
    p += take;
    n -= take;
    if (npending_ < sizeof pending_) return;
    uint64_t w;
    std::memcpy(&w, pending_, 8);
    absorb(w);
    npending_ = 0;
  }
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    absorb(w);
  }
  std::memcpy(pending_, p, n);
  npending_ = n;
}

uint64_t StreamHasher::digest() const {
  uint64_t tail = 0;
  std::memcpy(&tail, pending_, npending_);
  return mix64(state_ ^ mix64(tail ^ (length_ << 3)));
}

uint64_t hash_bytes(std::string_view bytes, uint64_t seed) {
  StreamHasher h(seed);
  h.update(bytes);
  return h.digest();
}

uint64_t hash_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open file to hash its content");
  StreamHasher h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw InputError(path, "read error while hashing the file");
  return h.digest();
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t Rng::below(uint64_t n) {
  unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < n) {
    uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(next()) * n;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

}  // namespace fm::data
