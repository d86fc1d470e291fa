// SampleSource: a dataset seen as fixed-length training samples.
//
// A sample is a window of seq_len+1 consecutive tokens: the model reads tokens [0, T) and predicts
// tokens [1, T]. Beside the tokens every sample carries a per-token target mask: mask[t] == 0 means
// token t is not a training target (its label becomes -100); mask[0] is never used as a target.
//
// Indexing: size() samples make one epoch, and read() accepts any index >= 0: sample
// index % size() of epoch index / size(). Sources that vary by epoch (blends) use the epoch; the
// others ignore it. Implementations are immutable after construction and safe to read from many
// threads at once.
#pragma once

#include <cstdint>
#include <string>

namespace fm::data {

class SampleSource {
 public:
  virtual ~SampleSource() = default;
  virtual std::string describe() const = 0;
  virtual int seq_len() const = 0;
  virtual int64_t size() const = 0;
  // Fills tokens[0..seq_len] and target_mask[0..seq_len] (mask values 0 or 1).
  virtual void read(int64_t index, int32_t* tokens, uint8_t* target_mask) const = 0;
  // How many of tokens 1..seq_len of the sample are targets. Sources without masks answer seq_len
  // without touching the data, so counting a whole global batch stays cheap.
  virtual int64_t num_targets(int64_t index) const;
  // Where token `pos` (0..seq_len) of the sample lives, as "file:byte_offset" (or a description
  // for generated data): the `where` of an InputError about that token.
  virtual std::string locate(int64_t index, int pos) const = 0;
};

}  // namespace fm::data
