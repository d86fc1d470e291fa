// PackedSource: documents packed into fixed-length samples.
//
// A contiguous range of a DocumentSet's documents (one split) is put in an order (shuffled once
// by seed, or kept in file order), laid end to end, and cut into windows of seq_len+1 tokens that
// overlap by one token, as token files are: window w covers tokens [w*T, w*T + T] of the
// concatenation, and a trailing remainder shorter than a window is not used. Documents are not
// separated beyond the EOS they end with; every target counts (no mask).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/documents.h"
#include "data/sample_source.h"

namespace fm::data {

class PackedSource final : public SampleSource {
 public:
  // Documents [first_doc, first_doc + num_docs); shuffle_seed empty keeps file order.
  PackedSource(std::shared_ptr<const DocumentSet> docs, int64_t first_doc, int64_t num_docs, int seq_len,
               std::optional<uint64_t> shuffle_seed, std::string split_name);
  std::string describe() const override;
  int seq_len() const override { return seq_len_; }
  int64_t size() const override { return num_windows_; }
  void read(int64_t index, int32_t* tokens, uint8_t* target_mask) const override;
  int64_t num_targets(int64_t) const override { return seq_len_; }
  std::string locate(int64_t index, int pos) const override;

  int64_t num_documents() const { return static_cast<int64_t>(order_.size()); }
  int64_t num_tokens() const { return ends_.empty() ? 0 : ends_.back(); }
  // The set's document number at packing position i (tests use it to check splits).
  int64_t document_at(int64_t i) const { return order_[i]; }

 private:
  // Set token offset of position p (0 <= p < num_tokens()) of the concatenation.
  int64_t set_token(int64_t p) const;
  std::shared_ptr<const DocumentSet> docs_;
  int seq_len_;
  std::string split_name_;
  std::vector<int64_t> order_;  // document numbers in packing order
  std::vector<int64_t> ends_;   // ends_[i] = tokens of order_[0..i] together
  int64_t num_windows_ = 0;
};

}  // namespace fm::data
