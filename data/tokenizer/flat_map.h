// Open-addressing hash tables for the tokenizer's hot lookups (merge pairs, vocabulary strings,
// the per-thread word cache). Linear probing over a power-of-two table kept at most half full;
// keys of string tables live in one arena, so a lookup touches two cache lines at most and
// building one allocates a handful of times, not once per entry.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace fm::data::hf {

inline uint64_t hash_bytes(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = 0x9E3779B97F4A7C15ull * (n + 1);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  std::memcpy(&w, p, n);
  h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
  // Avalanche, so that the low bits used as table indices depend on every byte.
  h ^= h >> 37;
  h *= 0x165667919E3779F9ull;
  h ^= h >> 32;
  return h;
}

// Equality of two byte ranges of length n, inlined for the short keys of vocabularies and words.
inline bool bytes_equal(const char* a, const char* b, size_t n) {
  while (n >= 8) {
    uint64_t x, y;
    std::memcpy(&x, a, 8);
    std::memcpy(&y, b, 8);
    if (x != y) return false;
    a += 8;
    b += 8;
    n -= 8;
  }
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

inline size_t table_size_for(size_t entries) {
  size_t size = 16;
  while (size < entries * 2) size *= 2;
  return size;
}

// uint64 -> uint64; the key ~0 is reserved (never a valid key here).
class U64Map {
 public:
  static constexpr uint64_t kEmpty = ~0ull;
  explicit U64Map(size_t expected = 0) { reset(expected); }
  void reset(size_t expected) {
    slots_.assign(table_size_for(expected), Slot{kEmpty, 0});
    mask_ = slots_.size() - 1;
    shift_ = 64;
    for (size_t s = slots_.size(); s > 1; s >>= 1) --shift_;
    size_ = 0;
  }
  // Later values of a key replace earlier ones.
  void insert_or_assign(uint64_t key, uint64_t value) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    size_t i = slot_of(key);
    while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask_;
    if (slots_[i].key == kEmpty) ++size_;
    slots_[i] = Slot{key, value};
  }
  const uint64_t* find(uint64_t key) const {
    size_t i = slot_of(key);
    while (true) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key, value;
  };
  // Fibonacci hashing: the high bits of key * 2^64/phi depend on every bit of the key.
  size_t slot_of(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    reset(old.size());
    for (const Slot& s : old)
      if (s.key != kEmpty) insert_or_assign(s.key, s.value);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
  int shift_ = 64;
};

// string -> int32 id, built once; lookups with a precomputed hash_bytes(). Slots are 16 bytes:
// the low bits of the hash pick the slot, the high half is kept as a tag.
class StringIdMap {
 public:
  void reserve(size_t expected) { rebuild(table_size_for(expected)); }
  // Returns false (and changes nothing) when the key is already present.
  bool insert(std::string_view key, int32_t id) {
    if ((entries_ + 1) * 2 > slots_.size()) rebuild(slots_.empty() ? 16 : slots_.size() * 2);
    uint64_t h = hash_bytes(key);
    size_t i = h & mask_;
    while (slots_[i].id >= 0) {
      if (matches(slots_[i], key, h)) return false;
      i = (i + 1) & mask_;
    }
    slots_[i] = Slot{static_cast<uint32_t>(h >> 32), static_cast<uint32_t>(arena_.size()),
                     static_cast<uint32_t>(key.size()), id};
    arena_.append(key);
    ++entries_;
    return true;
  }
  int32_t find(std::string_view key, uint64_t h) const {
    if (slots_.empty()) return -1;
    size_t i = h & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (matches(s, key, h)) return s.id;
      i = (i + 1) & mask_;
    }
  }
  int32_t find(std::string_view key) const { return find(key, hash_bytes(key)); }
  void prefetch(uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[h & mask_]);
  }
  size_t size() const { return entries_; }

 private:
  struct Slot {
    uint32_t tag = 0, off = 0, len = 0;
    int32_t id = -1;
  };
  bool matches(const Slot& s, std::string_view key, uint64_t h) const {
    return s.tag == static_cast<uint32_t>(h >> 32) && s.len == key.size() &&
           bytes_equal(arena_.data() + s.off, key.data(), key.size());
  }
  void rebuild(size_t size) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(size, Slot{});
    mask_ = size - 1;
    for (const Slot& s : old) {
      if (s.id < 0) continue;
      size_t i = hash_bytes(std::string_view(arena_).substr(s.off, s.len)) & mask_;
      while (slots_[i].id >= 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::string arena_;
  size_t mask_ = 0, entries_ = 0;
};

}  // namespace fm::data::hf
