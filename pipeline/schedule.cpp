#include "pipeline/schedule.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/base/error.h"

namespace fm::pipeline {

namespace {

using K = InstructionKind;

Instruction op(K kind, int buffer, int micro_batch) { return {kind, buffer, micro_batch}; }

void check_shape(int stages, int micro_batches, int stage) {
  FM_CHECK(stages >= 1 && micro_batches >= 1 && stage >= 0 && stage < stages,
           fmt::format("schedule for stages={} micro_batches={} stage={}", stages, micro_batches, stage));
}

void append_optimizer_tail(Step& step) {
  step.push_back(op(K::ReduceTiedGrads, -1, -1));
  step.push_back(op(K::ReduceGrads, -1, -1));
  step.push_back(op(K::OptimizerStep, -1, -1));
}

bool is_even(int x) { return x % 2 == 0; }

// Appends a stage's sends and receives of one step in the order that pairs blocking transfers.
void append_transfers(Step& step, const Step& send, const Step& recv, bool sends_first) {
  const Step& first = sends_first ? send : recv;
  const Step& second = sends_first ? recv : send;
  step.insert(step.end(), first.begin(), first.end());
  step.insert(step.end(), second.begin(), second.end());
}

// Which micro-batch stage s works on in step t of 1F1B, and in which direction. Forwards of
// micro-batch i run at step 2i+s, backwards at 2i+2p-s-1; the parities of step and stage pick one.
struct Slot {
  int micro_batch;
  bool forward;
};

Slot one_f_one_b_slot(int step, int stages, int stage) {
  if (is_even(step) && is_even(stage)) return {step / 2 - stage / 2, true};
  if (!is_even(step) && !is_even(stage)) return {(step - 1) / 2 - stage / 2, true};
  if (is_even(step)) return {step / 2 - stages + (stage + 1) / 2, false};
  return {(step - 1) / 2 - stages + 1 + stage / 2, false};
}

}  // namespace

int num_buffers(ScheduleKind kind, int stages, int micro_batches, int stage) {
  check_shape(stages, micro_batches, stage);
  switch (kind) {
    case ScheduleKind::OneFOneB:
      return std::max(2, std::min(stages - stage, micro_batches));
    case ScheduleKind::GPipe:
      return micro_batches;
    case ScheduleKind::Inference:
      return 2;
  }
  FM_CHECK(false, "unknown schedule kind");
  return 0;
}

Schedule train_schedule_1f1b(int stages, int micro_batches, int stage) {
  check_shape(stages, micro_batches, stage);
  Schedule sch{ScheduleKind::OneFOneB,
               stages,
               micro_batches,
               stage,
               num_buffers(ScheduleKind::OneFOneB, stages, micro_batches, stage),
               {}};
  const int nbuf = sch.num_buffers;
  const bool has_prev = stage > 0, has_next = stage < stages - 1;
  const bool loads = stage == 0 || stage == stages - 1;
  auto valid = [&](int mb) { return mb >= 0 && mb < micro_batches; };

  const int total_steps = 2 * (micro_batches + stages - 1);
  int prev_mb = -1;
  for (int t = 0; t < total_steps; ++t) {
    const Slot slot = one_f_one_b_slot(t, stages, stage);
    const int mb = slot.micro_batch;
    const int cur_buf = valid(mb) ? mb % nbuf : -1;
    const int prev_buf = valid(prev_mb) ? prev_mb % nbuf : -1;
    Step step;
    if (slot.forward) {
      // The gradient of the micro-batch backwarded in the previous step leaves before the next
      // activation arrives; the previous stage runs the matching receive/send in this step.
      if (valid(prev_mb) && has_prev) step.push_back(op(K::SendGrad, prev_buf, prev_mb));
      if (valid(mb) && has_prev) step.push_back(op(K::RecvActivation, cur_buf, mb));
    } else {
      if (valid(mb) && has_next) step.push_back(op(K::RecvGrad, cur_buf, mb));
      if (valid(prev_mb) && has_next) step.push_back(op(K::SendActivation, prev_buf, prev_mb));
    }
    if (loads && slot.forward && valid(mb)) step.push_back(op(K::LoadMicroBatch, cur_buf, mb));
    if (valid(mb)) step.push_back(op(slot.forward ? K::ForwardPass : K::BackwardPass, cur_buf, mb));
    if (t == total_steps - 1) append_optimizer_tail(step);
    prev_mb = mb;
    sch.steps.push_back(std::move(step));
  }
  return sch;
}

// GPipe: a forward phase of m+p-1 steps (stage s forwards micro-batch i at step i+s), then a
// backward phase of m+p-1 steps (stage s backwards micro-batch m-1-j at step j+p-1-s of the
// phase). A send travels in the step after the compute that produced it, together with the
// neighbour's receive. Even stages send before they receive, odd stages receive first, so
// blocking transfers pair up without waiting along the whole pipe (as DeepSpeed's inference).
Schedule train_schedule_gpipe(int stages, int micro_batches, int stage) {
  check_shape(stages, micro_batches, stage);
  Schedule sch{ScheduleKind::GPipe, stages, micro_batches, stage, micro_batches, {}};
  const bool has_prev = stage > 0, has_next = stage < stages - 1;
  const bool loads = stage == 0 || stage == stages - 1;
  const bool sends_first = is_even(stage);
  auto valid = [&](int mb) { return mb >= 0 && mb < micro_batches; };
  const int phase_steps = micro_batches + stages - 1;

  for (int t = 0; t < phase_steps; ++t) {
    const int mb = t - stage;  // forwarded now
    const int sent = mb - 1;   // forwarded in the previous step
    Step step, send, recv;
    if (has_next && valid(sent)) send.push_back(op(K::SendActivation, sent, sent));
    if (has_prev && valid(mb)) recv.push_back(op(K::RecvActivation, mb, mb));
    append_transfers(step, send, recv, sends_first);
    if (loads && valid(mb)) step.push_back(op(K::LoadMicroBatch, mb, mb));
    if (valid(mb)) step.push_back(op(K::ForwardPass, mb, mb));
    sch.steps.push_back(std::move(step));
  }
  for (int t = 0; t < phase_steps; ++t) {
    const int j = t - (stages - 1 - stage);  // index of the backward in this stage's order
    const int mb = micro_batches - 1 - j;
    const int sent = mb + 1;  // backwarded in the previous step
    Step step, send, recv;
    if (has_prev && valid(sent)) send.push_back(op(K::SendGrad, sent, sent));
    if (has_next && valid(mb)) recv.push_back(op(K::RecvGrad, mb, mb));
    append_transfers(step, send, recv, sends_first);
    if (valid(mb)) step.push_back(op(K::BackwardPass, mb, mb));
    if (t == phase_steps - 1) append_optimizer_tail(step);
    sch.steps.push_back(std::move(step));
  }
  return sch;
}

Schedule inference_schedule(int stages, int micro_batches, int stage) {
  check_shape(stages, micro_batches, stage);
  Schedule sch{ScheduleKind::Inference, stages, micro_batches, stage, 2, {}};
  const bool has_prev = stage > 0, has_next = stage < stages - 1;
  const bool loads = stage == 0 || stage == stages - 1;
  auto valid = [&](int mb) { return mb >= 0 && mb < micro_batches; };
  const int total_steps = micro_batches + stages - 1;
  for (int t = 0; t < total_steps; ++t) {
    const int mb = t - stage;
    // The two slots alternate; a stage receives into one while the other still holds the
    // activation it forwarded in the previous step and sends now.
    const int recv_buf = is_even(stage) ? t % 2 : (t + 1) % 2;
    const int send_buf = is_even(stage) ? (t + 1) % 2 : t % 2;
    Step step;
    if (loads && valid(mb)) step.push_back(op(K::LoadMicroBatch, recv_buf, mb));
    const bool send = has_next && valid(mb - 1);
    const bool recv = has_prev && valid(mb);
    if (is_even(stage)) {
      if (send) step.push_back(op(K::SendActivation, send_buf, mb - 1));
      if (recv) step.push_back(op(K::RecvActivation, recv_buf, mb));
    } else {
      if (recv) step.push_back(op(K::RecvActivation, recv_buf, mb));
      if (send) step.push_back(op(K::SendActivation, send_buf, mb - 1));
    }
    if (valid(mb)) step.push_back(op(K::ForwardPass, recv_buf, mb));
    sch.steps.push_back(std::move(step));
  }
  return sch;
}

Schedule make_schedule(ScheduleKind kind, int stages, int micro_batches, int stage) {
  switch (kind) {
    case ScheduleKind::OneFOneB:
      return train_schedule_1f1b(stages, micro_batches, stage);
    case ScheduleKind::GPipe:
      return train_schedule_gpipe(stages, micro_batches, stage);
    case ScheduleKind::Inference:
      return inference_schedule(stages, micro_batches, stage);
  }
  FM_CHECK(false, "unknown schedule kind");
  return {};
}

std::string_view schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::OneFOneB:
      return "1f1b";
    case ScheduleKind::GPipe:
      return "gpipe";
    case ScheduleKind::Inference:
      return "inference";
  }
  return "?";
}

bool parse_schedule_kind(std::string_view name, ScheduleKind& out) {
  for (ScheduleKind k : {ScheduleKind::OneFOneB, ScheduleKind::GPipe, ScheduleKind::Inference}) {
    if (name == schedule_kind_name(k)) {
      out = k;
      return true;
    }
  }
  return false;
}

std::string_view instruction_name(InstructionKind kind) {
  switch (kind) {
    case K::LoadMicroBatch:
      return "LoadMicroBatch";
    case K::ForwardPass:
      return "ForwardPass";
    case K::BackwardPass:
      return "BackwardPass";
    case K::SendActivation:
      return "SendActivation";
    case K::RecvActivation:
      return "RecvActivation";
    case K::SendGrad:
      return "SendGrad";
    case K::RecvGrad:
      return "RecvGrad";
    case K::ReduceTiedGrads:
      return "ReduceTiedGrads";
    case K::ReduceGrads:
      return "ReduceGrads";
    case K::OptimizerStep:
      return "OptimizerStep";
  }
  return "?";
}

std::string to_string(const Instruction& instruction) {
  if (instruction.buffer < 0) return fmt::format("{}()", instruction_name(instruction.kind));
  return fmt::format("{}(buffer_id={})", instruction_name(instruction.kind), instruction.buffer);
}

bool is_send(InstructionKind kind) { return kind == K::SendActivation || kind == K::SendGrad; }
bool is_recv(InstructionKind kind) { return kind == K::RecvActivation || kind == K::RecvGrad; }

}  // namespace fm::pipeline
