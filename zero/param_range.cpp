#include "zero/param_range.h"

#include <algorithm>

#include "runtime/base/error.h"

namespace fm::zero {

namespace {

// Appends [begin, end) to `segments`, extending the last one when it is adjacent and alike.
void append(std::vector<Segment>& segments, int64_t begin, int64_t end, bool decay) {
  if (!segments.empty() && segments.back().end == begin && segments.back().decay == decay) {
    segments.back().end = end;
    return;
  }
  segments.push_back({begin, end, decay});
}

}  // namespace

ParamRange make_param_range(const model::ParamLayout& layout, int64_t begin, int64_t end) {
  FM_CHECK(0 <= begin && begin <= end, "bad parameter range");
  ParamRange range;
  range.begin = begin;
  range.end = end;
  for (const model::ParamInfo& p : layout.params) {
    const int64_t lo = std::max(begin, p.offset);
    const int64_t hi = std::min(end, p.offset + p.numel());
    if (lo >= hi) continue;
    append(range.update, lo, hi, p.decay);
    if (!p.replica) append(range.norm, lo, hi, true);
  }
  return range;
}

}  // namespace fm::zero
