// ZeRO stages 0-2 as plans: who owns which part of a stage's flat buffer, in which buckets
// gradients are reduced and parameters gathered, and what each rank keeps in memory. Pure
// functions; the communication that follows these plans lives with the communicators.
//
// Layout (DeepSpeed's stage_1_and_2.py): the flat buffer of n elements is padded with zeros to a
// multiple of 2*dp (nccl_start_alignment_factor 2 times the data-parallel size) and split into dp
// equal partitions; rank r owns [r*P, (r+1)*P), P = padded/dp, and keeps the fp32 master (when the
// working parameters are not fp32) and Adam's m and v for it. Stage 1 keeps full gradients; stage
// 2 keeps only its partition's gradients plus bucket buffers. Stage 0 is plain data parallelism.
//
// Reduce buckets follow the order gradients become ready in the backward pass, the last tensor
// of the buffer first. Like DeepSpeed, a bucket is closed before a tensor that would take it past
// reduce_bucket_size elements, so buckets hold whole tensors and a tensor larger than the bucket
// size travels alone. Buckets here are contiguous element ranges of the flat buffer.
// All-gather shards follow DeepSpeed's sharded all-gather: max(1, P*dp / allgather_bucket_size)
// shards of each partition, shard size rounded down to a multiple of 2, the last shard taking the
// rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/param_layout.h"

namespace fm::zero {

inline constexpr int64_t kZeroAlignmentFactor = 2;  // DeepSpeed's nccl_start_alignment_factor

struct ZeroPartitioning {
  int64_t numel = 0;            // elements in the stage's flat buffer
  int dp = 1;                   // data-parallel size
  int64_t padded_numel = 0;     // numel rounded up to a multiple of 2*dp
  int64_t partition_numel = 0;  // padded_numel / dp
  int64_t begin(int rank) const { return rank * partition_numel; }
  int64_t end(int rank) const { return (rank + 1) * partition_numel; }
  // Elements of rank's partition that lie past numel (padding), 0 for all but the last ranks.
  int64_t padding(int rank) const;
};

ZeroPartitioning make_zero_partitioning(int64_t numel, int dp);

// A contiguous element range [begin, end) of the flat buffer.
struct Bucket {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
  bool operator==(const Bucket&) const = default;
};

// Gradient reduction buckets, in the order they fill during backward (first bucket = the end of
// the buffer). They cover [0, layout.total) exactly once.
std::vector<Bucket> reduce_buckets(const model::ParamLayout& layout, int64_t reduce_bucket_size);

// The part of `bucket` that falls in [begin, end) (empty when disjoint): what a rank keeps of a
// reduced bucket under ZeRO-2, or reduces to its owner.
Bucket intersect(const Bucket& bucket, int64_t begin, int64_t end);

// One round of the parameter all-gather: every rank contributes `count` elements starting at
// `offset` within its own partition.
struct GatherShard {
  int64_t offset = 0, count = 0;
  bool operator==(const GatherShard&) const = default;
};
std::vector<GatherShard> allgather_shards(const ZeroPartitioning& part, int64_t allgather_bucket_size);

struct ZeroMemoryInputs {
  int stage = 0;                           // 0, 1 or 2
  int64_t numel = 0;                       // parameters of the pipeline stage (its flat buffer)
  int dp = 1;                              // data-parallel size
  size_t param_bytes = 4;                  // working parameters: 4 (fp32, CPU) or 2 (bf16/fp16)
  size_t grad_bytes = 4;                   // gradient accumulation element
  int64_t reduce_bucket_size = 500000000;  // elements
  int bucket_buffers = 1;                  // ZeRO-2 reduction buffers (2 when communication overlaps)
};

// Bytes one rank holds for the stage's parameters, gradients and optimizer state.
struct ZeroMemory {
  int64_t params = 0;           // working parameters (full copy in stages 0-2)
  int64_t grads = 0;            // full gradients (stages 0, 1) or partition + buckets (stage 2)
  int64_t optimizer_state = 0;  // m + v (fp32), plus the fp32 master when params are not fp32
  int64_t total() const { return params + grads + optimizer_state; }
};

ZeroMemory zero_memory_per_rank(const ZeroMemoryInputs& in);

}  // namespace fm::zero
