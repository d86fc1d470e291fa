// XXH64: the 64-bit xxHash checksum, used for the files of a checkpoint.
//
// Chosen over sha256 for speed (several GB/s on one core, below the cost of the write itself) and
// over crc32 for its width: a checkpoint's files are checked against accidental damage (truncation,
// flipped bytes, a half-copied shard), not against tampering. The digest equals the reference
// implementation's XXH64(data, len, seed); `Xxh64` computes it incrementally, and the result does
// not depend on how the bytes are cut into update() calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fm::checkpoint {

class Xxh64 {
 public:
  explicit Xxh64(uint64_t seed = 0);
  void update(const void* data, size_t n);
  uint64_t digest() const;

 private:
  uint64_t acc_[4];
  uint64_t seed_;
  uint64_t total_ = 0;
  unsigned char pending_[32];
  size_t npending_ = 0;
};

uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);

// 16 lowercase hex digits, and back (false on anything else).
std::string checksum_hex(uint64_t v);
bool parse_checksum_hex(std::string_view s, uint64_t& out);

// Checksum and size of a whole file, read sequentially. An unreadable file is an InputError
// naming it.
struct FileDigest {
  uint64_t checksum = 0;
  int64_t bytes = 0;
};
FileDigest digest_file(const std::string& path);

}  // namespace fm::checkpoint
