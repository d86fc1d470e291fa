// The parameters that fall in a range [begin, end) of a stage's flat parameter buffer.
//
// The optimizer and the gradient norm work on ranges, so that with ZeRO each data-parallel rank
// handles one partition (without ZeRO the range is the whole buffer). Built once from the stage's
// ParamLayout by intersecting each tensor's extent with the range:
//  - `update`: the extents to update, adjacent ones with the same weight-decay flag merged, so the
//    optimizer makes one kernel call per run of decayed / not decayed tensors (norm weights are not
//    decayed). Tied replicas are updated like owners (they receive the same summed gradient).
//  - `norm`: the extents whose gradients count in the global gradient norm: everything but tied
//    replicas, which the owner's copy already counts.
// A range may reach past the last tensor (ZeRO's alignment padding): those elements are in no
// segment and are never updated.
#pragma once

#include <cstdint>
#include <vector>

#include "model/param_layout.h"

namespace fm::zero {

// Absolute element offsets in the stage's flat buffer.
struct Segment {
  int64_t begin = 0, end = 0;
  bool decay = true;
  int64_t size() const { return end - begin; }
  bool operator==(const Segment&) const = default;
};

struct ParamRange {
  int64_t begin = 0, end = 0;
  std::vector<Segment> update;
  std::vector<Segment> norm;  // `decay` is meaningless here
  int64_t size() const { return end - begin; }
};

ParamRange make_param_range(const model::ParamLayout& layout, int64_t begin, int64_t end);
inline ParamRange whole_buffer_range(const model::ParamLayout& layout) {
  return make_param_range(layout, 0, layout.total);
}

}  // namespace fm::zero
