// DocumentSet: tokenized documents laid end to end, addressed by document number and token offset.
//
// Shards on disk (data/shard.h) and corpora generated in memory (data/synthetic.h) both present
// themselves this way, so packing, splitting and shuffling (data/packed_source.h) are written once.
// Every document already ends with its tokenizer's EOS. Implementations are immutable and
// thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fm::data {

class DocumentSet {
 public:
  virtual ~DocumentSet() = default;
  virtual std::string describe() const = 0;
  virtual int64_t num_documents() const = 0;
  virtual int64_t num_tokens() const = 0;
  // Token offset of document `doc` in the set; document_start(num_documents()) == num_tokens().
  virtual int64_t document_start(int64_t doc) const = 0;
  int64_t document_length(int64_t doc) const { return document_start(doc + 1) - document_start(doc); }
  // Copies tokens [first, first + count) of the set, widened to int32.
  virtual void copy_tokens(int64_t first, int64_t count, int32_t* out) const = 0;
  // "file:byte_offset" of a token, for messages about it.
  virtual std::string locate_token(int64_t token) const = 0;
};

// Documents held in memory (generated corpora, tests).
class InMemoryDocuments final : public DocumentSet {
 public:
  InMemoryDocuments(std::string description, std::vector<int32_t> tokens, std::vector<int64_t> starts);
  std::string describe() const override { return description_; }
  int64_t num_documents() const override { return static_cast<int64_t>(starts_.size()) - 1; }
  int64_t num_tokens() const override { return static_cast<int64_t>(tokens_.size()); }
  int64_t document_start(int64_t doc) const override { return starts_[doc]; }
  void copy_tokens(int64_t first, int64_t count, int32_t* out) const override;
  std::string locate_token(int64_t token) const override;
  const std::vector<int32_t>& tokens() const { return tokens_; }

 private:
  std::string description_;
  std::vector<int32_t> tokens_;
  std::vector<int64_t> starts_;  // num_documents + 1 entries
};

}  // namespace fm::data
