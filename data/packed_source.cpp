#include "data/packed_source.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include <fmt/format.h>

#include "data/hash.h"
#include "runtime/base/error.h"

namespace fm::data {

PackedSource::PackedSource(std::shared_ptr<const DocumentSet> docs, int64_t first_doc, int64_t num_docs,
                           int seq_len, std::optional<uint64_t> shuffle_seed, std::string split_name)
    : docs_(std::move(docs)), seq_len_(seq_len), split_name_(std::move(split_name)) {
  FM_CHECK(seq_len_ > 0 && first_doc >= 0 && num_docs >= 0 && first_doc + num_docs <= docs_->num_documents());
  order_.resize(num_docs);
  std::iota(order_.begin(), order_.end(), first_doc);
  if (shuffle_seed) {
    Rng rng(hash_combine(*shuffle_seed, 0x646f63756d656e74ULL));
    for (int64_t i = num_docs - 1; i > 0; --i)
      std::swap(order_[i], order_[static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1))]);
  }
  ends_.resize(num_docs);
  int64_t total = 0;
  for (int64_t i = 0; i < num_docs; ++i) ends_[i] = total += docs_->document_length(order_[i]);
  num_windows_ = total > seq_len_ ? (total - 1) / seq_len_ : 0;
}

std::string PackedSource::describe() const {
  return fmt::format("{} split of {}: {} documents, {} tokens, {} samples of {} tokens", split_name_,
                     docs_->describe(), num_documents(), num_tokens(), num_windows_, seq_len_ + 1);
}

int64_t PackedSource::set_token(int64_t p) const {
  auto it = std::upper_bound(ends_.begin(), ends_.end(), p);
  FM_CHECK(it != ends_.end());
  const int64_t i = it - ends_.begin();
  const int64_t doc_first = i == 0 ? 0 : ends_[i - 1];
  return docs_->document_start(order_[i]) + (p - doc_first);
}

void PackedSource::read(int64_t index, int32_t* tokens, uint8_t* target_mask) const {
  FM_CHECK(index >= 0 && num_windows_ > 0);
  int64_t p = (index % num_windows_) * seq_len_;
  int64_t left = seq_len_ + 1;
  auto it = std::upper_bound(ends_.begin(), ends_.end(), p);
  int64_t i = it - ends_.begin();
  while (left > 0) {
    FM_CHECK(i < static_cast<int64_t>(ends_.size()));
    const int64_t doc_first = i == 0 ? 0 : ends_[i - 1];
    const int64_t offset = p - doc_first;
    const int64_t n = std::min(left, ends_[i] - p);
    docs_->copy_tokens(docs_->document_start(order_[i]) + offset, n, tokens);
    tokens += n;
    left -= n;
    p += n;
    ++i;
  }
  std::memset(target_mask, 1, seq_len_ + 1);
}

std::string PackedSource::locate(int64_t index, int pos) const {
  return docs_->locate_token(set_token((index % num_windows_) * seq_len_ + pos));
}

}  // namespace fm::data
