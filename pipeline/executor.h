// Runs one stage's schedule (pipeline/schedule.h) over the pipeline group.
//
// The executor owns the point-to-point side of pipelining; everything else is the caller's:
// the stage computes (model/stage.h), and the reduce/step instructions call back into the
// trainer (ReduceTiedGrads, ReduceGrads, OptimizerStep). Data comes in as the micro-batches of
// this rank for the step; LoadMicroBatch picks micro-batch i's tokens (first stage) or targets
// (last stage).
//
// Communication: activations travel forward and their gradients backward as (B,T,C) fp32
// messages of a fixed size, so no shape header is needed. Receives are posted as early as their
// buffer is free (up to one per buffer slot, in schedule order) and sends are non-blocking, so
// transfers overlap the compute of the steps in between; a send's source (the stage's output or
// input gradient in a slot) is waited for before that slot is computed into again, and every
// transfer has completed when run() returns. Schedule buffer b maps to stage slot b mod
// num_slots: the last stage of 1F1B runs each backward right after its forward, so it needs one
// slot (its logits are the largest activation) where DeepSpeed allocates two buffers.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "model/stage.h"
#include "pipeline/schedule.h"
#include "runtime/comm/communicator.h"

namespace fm::pipeline {

struct MicroBatchInput {
  const int32_t* tokens = nullptr;   // (B*T), host; needed by the first stage
  const int32_t* targets = nullptr;  // (B*T), host, -100 = ignored; needed by the last stage
};

struct StepHooks {
  std::function<void()> reduce_tied_grads;
  std::function<void()> reduce_grads;
  std::function<void()> optimizer_step;
  std::function<void()> after_backward;  // after every BackwardPass (ZeRO-2 flushes its bucket)
};

class PipelineExecutor {
 public:
  // `pipeline` is the replica's pipeline group (group rank = stage); prev/next are the
  // neighbours' group ranks (-1 at the ends).
  PipelineExecutor(model::Stage& stage, comm::CommPtr pipeline, int prev_stage, int next_stage);
  ~PipelineExecutor();
  PipelineExecutor(const PipelineExecutor&) = delete;
  PipelineExecutor& operator=(const PipelineExecutor&) = delete;

  // Runs every step of `schedule`. Returns the summed token loss of the micro-batches this stage
  // computed the loss of (0 unless it is the last stage). `grad_scale` goes to the last stage's
  // forward; `training` is false for an inference schedule.
  double run(const Schedule& schedule, std::span<const MicroBatchInput> micro_batches, float grad_scale,
             bool training, const StepHooks& hooks);

  // Bytes of the receive buffers (activations and their gradients), for the memory report.
  int64_t buffer_bytes() const;
  // Receive buffers needed by a schedule with `buffers` slots (allocated on first use).
  void reserve(int buffers);

 private:
  struct Pending;
  float* recv_buffer(bool grad, int buffer);

  model::Stage& stage_;
  comm::CommPtr pipe_;
  int prev_, next_;
  int64_t message_floats_;
  std::vector<float*> act_in_, grad_in_;  // per schedule buffer
};

}  // namespace fm::pipeline
