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

// What the executor needs of a stage: the model's stage (model::Stage, through ModelStage below)
// or, in benchmarks, a synthetic one of fixed cost.
class StageCompute {
 public:
  virtual ~StageCompute() = default;
  virtual bool is_first() const = 0;
  virtual bool is_last() const = 0;
  virtual int num_slots() const = 0;
  virtual int64_t message_floats() const = 0;  // (B,T,C) floats travel between stages
  virtual kernels::Ops& ops() const = 0;       // allocates the receive buffers
  virtual double forward(int slot, const int32_t* tokens, const float* hidden_in, const int32_t* targets,
                         float grad_scale, bool training) = 0;
  virtual const float* output(int slot) const = 0;
  virtual void backward(int slot, const float* dhidden_out) = 0;
  virtual const float* input_grad(int slot) const = 0;
};

class ModelStage final : public StageCompute {
 public:
  explicit ModelStage(model::Stage& stage) : s_(stage) {}
  bool is_first() const override { return s_.is_first(); }
  bool is_last() const override { return s_.is_last(); }
  int num_slots() const override { return s_.shape().num_slots; }
  int64_t message_floats() const override {
    return int64_t(s_.shape().micro_batch) * s_.shape().seq_len * s_.config().hidden_size;
  }
  kernels::Ops& ops() const override { return s_.ops(); }
  double forward(int slot, const int32_t* tokens, const float* hidden_in, const int32_t* targets, float grad_scale,
                 bool training) override {
    return s_.forward(slot, tokens, hidden_in, targets, grad_scale, training);
  }
  const float* output(int slot) const override { return s_.output(slot); }
  void backward(int slot, const float* dhidden_out) override { s_.backward(slot, dhidden_out); }
  const float* input_grad(int slot) const override { return s_.input_grad(slot); }

 private:
  model::Stage& s_;
};

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
  PipelineExecutor(StageCompute& stage, comm::CommPtr pipeline, int prev_stage, int next_stage);
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
  float* recv_buffer(bool grad, int buffer);

  StageCompute& stage_;
  comm::CommPtr pipe_;
  int prev_, next_;
  int64_t message_floats_;
  std::vector<float*> act_in_, grad_in_;  // per schedule buffer
};

}  // namespace fm::pipeline
