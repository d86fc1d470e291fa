#include "pipeline/executor.h"

#include <deque>

#include "runtime/base/error.h"

namespace fm::pipeline {
namespace {

constexpr int kActivationTag = 11;
constexpr int kGradTag = 12;

}  // namespace

PipelineExecutor::PipelineExecutor(StageCompute& stage, comm::CommPtr pipeline, int prev_stage, int next_stage)
    : stage_(stage), pipe_(std::move(pipeline)), prev_(prev_stage), next_(next_stage),
      message_floats_(stage.message_floats()) {}

PipelineExecutor::~PipelineExecutor() {
  for (float* p : act_in_) stage_.ops().release(p);
  for (float* p : grad_in_) stage_.ops().release(p);
}

void PipelineExecutor::reserve(int buffers) {
  const size_t bytes = size_t(message_floats_) * sizeof(float);
  if (prev_ >= 0)
    while (int(act_in_.size()) < buffers) act_in_.push_back(static_cast<float*>(stage_.ops().alloc(bytes)));
  if (next_ >= 0)
    while (int(grad_in_.size()) < buffers) grad_in_.push_back(static_cast<float*>(stage_.ops().alloc(bytes)));
}

int64_t PipelineExecutor::buffer_bytes() const {
  return int64_t(act_in_.size() + grad_in_.size()) * message_floats_ * int64_t(sizeof(float));
}

float* PipelineExecutor::recv_buffer(bool grad, int buffer) {
  auto& v = grad ? grad_in_ : act_in_;
  FM_CHECK(buffer >= 0 && buffer < int(v.size()), "receive buffer out of range");
  return v[size_t(buffer)];
}

double PipelineExecutor::run(const Schedule& schedule, std::span<const MicroBatchInput> micro_batches,
                             float grad_scale, bool training, const StepHooks& hooks) {
  reserve(schedule.num_buffers);
  const int slots = stage_.num_slots();
  const comm::DType f32 = comm::DType::F32;
  const size_t count = size_t(message_floats_);

  // Receives in schedule order, posted early. A buffer's data is "live" from its receive until the
  // forward (activation) or backward (gradient) that consumes it.
  struct RecvOp {
    bool grad;
    int buffer;
    comm::Request req;
    bool posted = false;
  };
  std::deque<RecvOp> recvs;
  for (const Step& step : schedule.steps)
    for (const Instruction& ins : step)
      if (ins.kind == InstructionKind::RecvActivation || ins.kind == InstructionKind::RecvGrad)
        recvs.push_back({ins.kind == InstructionKind::RecvGrad, ins.buffer, {}, false});
  std::vector<char> act_busy(act_in_.size(), 0), grad_busy(grad_in_.size(), 0);
  auto post_ready = [&] {
    // Post in order; stop at the first receive whose buffer still holds unconsumed data, so
    // messages of one kind are always matched in the order they were sent.
    bool blocked_act = false, blocked_grad = false;
    for (RecvOp& r : recvs) {
      bool& blocked = r.grad ? blocked_grad : blocked_act;
      if (r.posted || blocked) continue;
      auto& busy = r.grad ? grad_busy : act_busy;
      if (busy[size_t(r.buffer)]) {
        blocked = true;
        continue;
      }
      busy[size_t(r.buffer)] = 1;
      r.req = r.grad ? pipe_->irecv(recv_buffer(true, r.buffer), count, f32, next_, kGradTag)
                     : pipe_->irecv(recv_buffer(false, r.buffer), count, f32, prev_, kActivationTag);
      r.posted = true;
    }
  };

  // Sends in flight, by stage slot: a slot's output / input gradient may not be recomputed
  // before its send has completed.
  std::vector<comm::Request> act_send(static_cast<size_t>(slots)), grad_send(static_cast<size_t>(slots));
  std::vector<const MicroBatchInput*> loaded(size_t(schedule.num_buffers), nullptr);

  double loss = 0;
  post_ready();
  for (const Step& step : schedule.steps) {
    for (const Instruction& ins : step) {
      const int slot = ins.buffer >= 0 ? ins.buffer % slots : -1;
      switch (ins.kind) {
        case InstructionKind::LoadMicroBatch:
          FM_CHECK(ins.micro_batch < int(micro_batches.size()), "schedule asks for a micro-batch that was not given");
          loaded[size_t(ins.buffer)] = &micro_batches[size_t(ins.micro_batch)];
          break;
        case InstructionKind::RecvActivation:
        case InstructionKind::RecvGrad: {
          FM_CHECK(!recvs.empty() && recvs.front().grad == (ins.kind == InstructionKind::RecvGrad) &&
                       recvs.front().buffer == ins.buffer,
                   "receive order");
          post_ready();
          recvs.front().req.wait();
          recvs.pop_front();
          break;
        }
        case InstructionKind::ForwardPass: {
          act_send[size_t(slot)].wait();  // the slot's previous output has left
          const MicroBatchInput* in = loaded[size_t(ins.buffer)];
          const float* hidden = nullptr;
          if (!stage_.is_first()) hidden = recv_buffer(false, ins.buffer);
          loss += stage_.forward(slot, in ? in->tokens : nullptr, hidden, in ? in->targets : nullptr, grad_scale,
                                 training);
          if (!stage_.is_first()) act_busy[size_t(ins.buffer)] = 0;  // copied into the slot
          if (!training) loaded[size_t(ins.buffer)] = nullptr;
          break;
        }
        case InstructionKind::SendActivation:
          act_send[size_t(slot)] = pipe_->isend(stage_.output(slot), count, f32, next_, kActivationTag);
          break;
        case InstructionKind::BackwardPass: {
          grad_send[size_t(slot)].wait();  // the slot's previous input gradient has left
          const float* dout = stage_.is_last() ? nullptr : recv_buffer(true, ins.buffer);
          stage_.backward(slot, dout);
          if (!stage_.is_last()) grad_busy[size_t(ins.buffer)] = 0;
          loaded[size_t(ins.buffer)] = nullptr;
          if (hooks.after_backward) hooks.after_backward();
          break;
        }
        case InstructionKind::SendGrad:
          grad_send[size_t(slot)] = pipe_->isend(stage_.input_grad(slot), count, f32, prev_, kGradTag);
          break;
        case InstructionKind::ReduceTiedGrads:
          if (hooks.reduce_tied_grads) hooks.reduce_tied_grads();
          break;
        case InstructionKind::ReduceGrads:
          if (hooks.reduce_grads) hooks.reduce_grads();
          break;
        case InstructionKind::OptimizerStep:
          if (hooks.optimizer_step) hooks.optimizer_step();
          break;
      }
    }
    post_ready();
  }
  for (auto& r : act_send) r.wait();
  for (auto& r : grad_send) r.wait();
  FM_CHECK(recvs.empty(), "unreceived messages at the end of the schedule");
  return loss;
}

}  // namespace fm::pipeline
