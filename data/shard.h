// Token shards: the output of fmprep, read back through memory maps.
//
// A shard is a pair of files sharing a prefix:
//   PREFIX.bin   64-byte header, then the tokens of all documents end to end (uint16 when the
//                tokenizer's vocab_size <= 65536, else uint32). Every document ends with EOS.
//   PREFIX.idx   32-byte header, then num_documents + 1 uint64 token offsets: document d is
//                tokens [offsets[d], offsets[d+1]).
// Header fields (little-endian) are listed in docs/data.md. Opening validates the index against
// the shard (sizes, counts, monotone offsets ending at the token count); every mismatch is an
// InputError naming the file and the byte offset of the bad field or entry.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "data/documents.h"
#include "data/mapped_file.h"

namespace fm::data {

inline constexpr char kShardMagic[9] = "FMTOKBIN";
inline constexpr char kIndexMagic[9] = "FMTOKIDX";
inline constexpr uint32_t kShardVersion = 1;
inline constexpr int64_t kShardHeaderBytes = 64;
inline constexpr int64_t kIndexHeaderBytes = 32;

struct ShardInfo {
  int token_bytes = 2;  // 2 or 4
  int64_t num_tokens = 0;
  int64_t num_documents = 0;
  int64_t vocab_size = 0;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  uint64_t tokenizer_fingerprint = 0;
};

// "x.bin", "x.idx" and "x" all name the shard "x".
std::string shard_prefix(const std::string& path);
// True if PREFIX.bin exists and starts with the shard magic.
bool is_shard(const std::string& path);

// Streams documents into PREFIX.bin/.idx. Output goes to temporary files renamed into place by
// finish(), so an interrupted run never leaves a shard that looks complete.
class ShardWriter {
 public:
  ShardWriter(const std::string& prefix, int64_t vocab_size, int32_t bos_id, int32_t eos_id,
              uint64_t tokenizer_fingerprint);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Appends one whole document (ids must already include its EOS).
  void add_document(const int32_t* ids, size_t n);
  void finish();
  const ShardInfo& info() const { return info_; }
  int64_t bytes_written() const { return kShardHeaderBytes + info_.num_tokens * info_.token_bytes; }

 private:
  void write_or_fail(std::FILE* f, const void* p, size_t n, const std::string& path);
  std::string prefix_, bin_tmp_, idx_tmp_;
  std::FILE* bin_ = nullptr;
  ShardInfo info_;
  std::vector<uint64_t> offsets_{0};
  std::vector<uint8_t> buffer_;
  bool finished_ = false;
};

class Shard final : public DocumentSet {
 public:
  static std::shared_ptr<const Shard> open(const std::string& path);
  const ShardInfo& info() const { return info_; }
  const std::string& prefix() const { return prefix_; }

  std::string describe() const override;
  int64_t num_documents() const override { return info_.num_documents; }
  int64_t num_tokens() const override { return info_.num_tokens; }
  int64_t document_start(int64_t doc) const override;
  void copy_tokens(int64_t first, int64_t count, int32_t* out) const override;
  std::string locate_token(int64_t token) const override;

 private:
  std::string prefix_;
  MappedFile bin_, idx_;
  ShardInfo info_;
  const uint8_t* tokens_ = nullptr;
  const uint64_t* offsets_ = nullptr;
};

}  // namespace fm::data
