// Where a stage's backward pass puts parameter gradients.
//
// By default the stage accumulates every parameter gradient into its own flat gradient buffer
// (Stage::grads()). A GradSink takes over instead: ZeRO stage 2 streams gradients into reduction
// buckets as backward produces them, so no rank ever holds the whole gradient. The stage asks
// for a gradient in row chunks of at most chunk_rows(p) rows (a weight (rows, cols); a vector is
// (rows, 1)) and calls, for each chunk in order:
//   float* g = acquire(p, r0, r1);   // (r1-r0)*cols floats that the stage ACCUMULATES into (+=)
//   ... the chunk's gradient for this micro-batch is added ...
//   release(p, r0, r1);              // complete for this micro-batch
// A tensor may be acquired more than once per backward (the embedding table of a tied model
// receives the LM head's gradient first and the embedding's last); each acquire/release pair is
// a separate contribution to sum.
#pragma once

#include <cstdint>

#include "model/param_layout.h"

namespace fm::model {

class GradSink {
 public:
  virtual ~GradSink() = default;
  virtual int64_t chunk_rows(const ParamInfo& p) = 0;
  virtual float* acquire(const ParamInfo& p, int64_t row_begin, int64_t row_end) = 0;
  virtual void release(const ParamInfo& p, int64_t row_begin, int64_t row_end) = 0;
};

}  // namespace fm::model
