// Text <-> token ids.
//
// Two families behind one interface:
//  - ByteTokenizer: the embedded default. Ids 0..255 are the bytes; 256 is <bos>, 257 is <eos>.
//    Every byte string round-trips exactly. Needs no file.
//  - HfTokenizer (data/tokenizer/hf_tokenizer.h): a Hugging Face tokenizer.json with a BPE model
//    (LLaMA 2 / Mistral sentencepiece-style, LLaMA 3 byte-level), giving the ids the `tokenizers`
//    library gives.
// Implementations are immutable after construction and safe to call from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fm::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string name() const = 0;
  // Number of ids the tokenizer can produce (the model's vocab_size must be at least this).
  virtual int64_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when the tokenizer has none
  virtual int32_t eos_id() const = 0;
  // Encodes `text`; with add_special_tokens the tokenizer's template (e.g. a leading <s>) applies,
  // exactly as `tokenizers`' encode(text, add_special_tokens=...) does.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const = 0;
};

class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kBos = 256;
  static constexpr int32_t kEos = 257;
  std::string name() const override { return "byte-level"; }
  int64_t vocab_size() const override { return 258; }
  int32_t bos_id() const override { return kBos; }
  int32_t eos_id() const override { return kEos; }
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override;
};

}  // namespace fm::data
