// ZeRO stages 0, 1 and 2 over the data-parallel ranks of one pipeline stage.
//
// The stage's flat buffer (padded to a multiple of 2 x dp, zero_plan.h) is split into dp equal
// partitions; data-parallel rank r owns partition r: the optimizer state (Adam's m and v; on the
// CPU the fp32 parameters are themselves the master copy) and, from stage 1 on, the job of
// updating it.
//   stage 0  every rank keeps full gradients; ReduceGrads all-reduces them in buckets of
//            reduce_bucket_size elements; every rank updates the whole buffer.
//   stage 1  full gradients accumulate over the micro-batches; ReduceGrads reduce-scatters them
//            (in rounds of reduce_bucket_size elements) so each rank holds its partition's sum;
//            each rank updates its partition; the partitions are all-gathered (in rounds of
//            allgather_bucket_size) into every rank's parameters.
//   stage 2  no rank holds the full gradient: backward writes each parameter gradient in row
//            chunks into a bucket of reduce_bucket_size elements (a model::GradSink), which is
//            all-reduced when full and after every micro-batch's backward; each rank adds the
//            part that falls in its partition to its partition's gradient. Tied weights whose
//            copies live on two pipeline stages keep a full gradient buffer of their own, summed
//            over the tied group (reduce_tied_grads) before their data-parallel reduction.
// Gradients are SUMMED over ranks: every micro-batch's loss gradient is already scaled by
// 1/targets(global batch). The global gradient norm counts every element once: partitions are
// disjoint (stages 1, 2) and only data-parallel rank 0 contributes without ZeRO (stage 0);
// tied replicas are excluded by ParamRange.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/ops.h"
#include "model/grad_sink.h"
#include "model/stage.h"
#include "runtime/comm/communicator.h"
#include "zero/adam.h"
#include "zero/param_range.h"
#include "zero/zero_plan.h"

namespace fm::zero {

struct ZeroSettings {
  int stage = 0;                           // 0, 1, 2
  int64_t reduce_bucket_size = 500000000;  // elements
  int64_t allgather_bucket_size = 500000000;
};

// Bytes one rank holds, measured from its allocations.
struct ZeroFootprint {
  int64_t params = 0, grads = 0, optimizer_state = 0;
};

class ZeroOptimizer {
 public:
  // Call before building the stage: the flat buffer size the stage must allocate, and whether it
  // keeps full gradients.
  static int64_t buffer_elements(int64_t numel, int dp);
  static bool keeps_full_grads(int stage) { return stage < 2; }

  // `dp_group`: the stage's data-parallel group; `tied_group`: first and last stage of this
  // replica when tied weights span stages (null otherwise).
  ZeroOptimizer(model::Stage& stage, const AdamConfig& adam, const ZeroSettings& settings,
                comm::CommPtr dp_group, comm::CommPtr tied_group);
  ~ZeroOptimizer();
  ZeroOptimizer(const ZeroOptimizer&) = delete;
  ZeroOptimizer& operator=(const ZeroOptimizer&) = delete;

  // Before the first micro-batch of a step: clears the gradients this rank accumulates.
  void begin_step();
  // After each BackwardPass (stage 2: reduce what is left in the bucket).
  void after_backward();
  // ReduceTiedGrads: sums the tied weights' gradients over the tied group.
  void reduce_tied_grads();
  // ReduceGrads: the data-parallel reduction of this stage's gradients.
  void reduce_grads();
  // This rank's share of the squared global gradient norm (all-reduce it over the world).
  double local_grad_sum_squares();
  // Scales this rank's reduced gradients by `clip` (1 = none), updates its range with `lr` and
  // `betas`, and (stages 1, 2) all-gathers the updated partitions.
  void step(double clip, double lr, double beta1, double beta2);

  const ParamRange& range() const { return range_; }  // what this rank updates
  const ZeroPartitioning& partitioning() const { return part_; }
  AdamOptimizer& adam() { return *adam_; }
  int zero_stage() const { return settings_.stage; }
  ZeroFootprint footprint() const;
  // The gradients of range() after reduce_grads (fp32 view of element range().begin).
  kernels::View range_grads() const;

 private:
  class BucketSink;
  void all_gather_params();

  model::Stage& stage_;
  kernels::Ops& ops_;
  ZeroSettings settings_;
  comm::CommPtr dp_, tied_;
  int dp_rank_ = 0, dp_size_ = 1;
  ZeroPartitioning part_;
  ParamRange range_;
  std::unique_ptr<AdamOptimizer> adam_;
  // stage 2
  float* part_grads_ = nullptr;  // (partition) gradients of the owned partition
  std::unique_ptr<BucketSink> sink_;
  // stage 1: pack buffer of a reduce-scatter round; stages 1, 2: all-gather round buffer
  float* staging_ = nullptr;
  int64_t staging_elements_ = 0;
};

}  // namespace fm::zero
