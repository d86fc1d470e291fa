#include "zero/zero_plan.h"

#include <algorithm>

#include "runtime/base/error.h"

namespace fm::zero {

int64_t ZeroPartitioning::padding(int rank) const {
  return std::clamp<int64_t>(end(rank) - std::max(numel, begin(rank)), 0, partition_numel);
}

ZeroPartitioning make_zero_partitioning(int64_t numel, int dp) {
  FM_CHECK(numel >= 0 && dp >= 1, "bad ZeRO partitioning request");
  ZeroPartitioning p;
  p.numel = numel;
  p.dp = dp;
  const int64_t alignment = kZeroAlignmentFactor * dp;
  p.padded_numel = (numel + alignment - 1) / alignment * alignment;
  p.partition_numel = p.padded_numel / dp;
  return p;
}

std::vector<Bucket> reduce_buckets(const model::ParamLayout& layout, int64_t reduce_bucket_size) {
  FM_CHECK(reduce_bucket_size >= 1, "reduce_bucket_size must be positive");
  std::vector<Bucket> buckets;
  Bucket open;
  bool has_open = false;
  for (auto it = layout.params.rbegin(); it != layout.params.rend(); ++it) {
    const int64_t n = it->numel();
    if (n == 0) continue;
    if (has_open && open.size() + n > reduce_bucket_size) {
      buckets.push_back(open);
      has_open = false;
    }
    if (!has_open) {
      open = {it->offset, it->offset + n};
      has_open = true;
    } else {
      FM_CHECK(it->offset + n == open.begin, "parameters must be contiguous in the flat buffer");
      open.begin = it->offset;
    }
  }
  if (has_open) buckets.push_back(open);
  return buckets;
}

Bucket intersect(const Bucket& bucket, int64_t begin, int64_t end) {
  const int64_t lo = std::max(bucket.begin, begin), hi = std::min(bucket.end, end);
  return lo < hi ? Bucket{lo, hi} : Bucket{lo, lo};
}

std::vector<GatherShard> allgather_shards(const ZeroPartitioning& part, int64_t allgather_bucket_size) {
  FM_CHECK(allgather_bucket_size >= 1, "allgather_bucket_size must be positive");
  const int64_t p = part.partition_numel;
  const int64_t num_shards = std::max<int64_t>(1, p * part.dp / allgather_bucket_size);
  int64_t shard = p / num_shards;
  shard -= shard % kZeroAlignmentFactor;
  std::vector<GatherShard> shards;
  for (int64_t i = 0; i < num_shards; ++i) {
    const int64_t count = i == num_shards - 1 ? p - i * shard : shard;
    if (count > 0) shards.push_back({i * shard, count});
  }
  return shards;
}

ZeroMemory zero_memory_per_rank(const ZeroMemoryInputs& in) {
  FM_CHECK(in.stage >= 0 && in.stage <= 2, "ZeRO memory is planned for stages 0, 1 and 2");
  const ZeroPartitioning part = make_zero_partitioning(in.numel, in.dp);
  const int64_t pb = static_cast<int64_t>(in.param_bytes), gb = static_cast<int64_t>(in.grad_bytes);
  // Elements whose optimizer state this rank holds: all of them without ZeRO, its partition with.
  const int64_t owned = in.stage == 0 ? in.numel : part.partition_numel;
  const int64_t master_bytes = in.param_bytes == sizeof(float) ? 0 : 4;  // fp32 params are the master

  ZeroMemory m;
  m.params = in.numel * pb;
  if (in.stage == 2) {
    const int64_t bucket = std::min(in.reduce_bucket_size, in.numel);
    m.grads = part.partition_numel * gb + static_cast<int64_t>(in.bucket_buffers) * bucket * gb;
  } else {
    m.grads = in.numel * gb;
  }
  m.optimizer_state = owned * (8 + master_bytes);
  return m;
}

}  // namespace fm::zero
