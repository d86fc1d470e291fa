// Pipeline schedules as data: (stages p, micro-batches m, stage s) -> steps of instructions.
//
// A step is a list of instructions that a stage runs in order. Steps are aligned across stages: a
// SendActivation/SendGrad of stage s in step t is received by its neighbour in the same step t, in
// an order that lets blocking point-to-point transfers complete (unit-tested by simulation). The
// executor (a separate module) runs the instructions; nothing here touches a process or a device.
//
// Every instruction that moves or computes a micro-batch names the stage-local buffer slot
// (`buffer`, as DeepSpeed's buffer_id) and, for the executor's bookkeeping, the micro-batch
// (`micro_batch`, 0-based). ReduceTiedGrads, ReduceGrads and OptimizerStep carry -1 for both.
//
// Schedules:
//  - OneFOneB  (train): DeepSpeed's TrainSchedule (PipeDream-Flush), instruction for instruction,
//              2(m+p-1) steps, max(2, min(p-s, m)) buffers indexed micro_batch % buffers.
//  - GPipe     (train): all forwards, then all backwards (in reverse micro-batch order);
//              2(m+p-1) steps, m buffers (buffer = micro_batch).
//  - Inference (forward only): DeepSpeed's InferenceSchedule, m+p-1 steps, 2 buffers.
// Train schedules end with ReduceTiedGrads, ReduceGrads, OptimizerStep in the last step.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fm::pipeline {

enum class InstructionKind : uint8_t {
  LoadMicroBatch,
  ForwardPass,
  BackwardPass,
  SendActivation,
  RecvActivation,
  SendGrad,
  RecvGrad,
  ReduceTiedGrads,
  ReduceGrads,
  OptimizerStep,
};

struct Instruction {
  InstructionKind kind = InstructionKind::ForwardPass;
  int buffer = -1;       // stage-local buffer slot, -1 for the reduce/step instructions
  int micro_batch = -1;  // 0-based micro-batch, -1 for the reduce/step instructions
  bool operator==(const Instruction&) const = default;
};

using Step = std::vector<Instruction>;

enum class ScheduleKind : uint8_t { OneFOneB, GPipe, Inference };

struct Schedule {
  ScheduleKind kind = ScheduleKind::OneFOneB;
  int stages = 1, micro_batches = 1, stage = 0;
  int num_buffers = 0;  // activation buffer slots this stage allocates
  std::vector<Step> steps;
};

Schedule make_schedule(ScheduleKind kind, int stages, int micro_batches, int stage);
Schedule train_schedule_1f1b(int stages, int micro_batches, int stage);
Schedule train_schedule_gpipe(int stages, int micro_batches, int stage);
Schedule inference_schedule(int stages, int micro_batches, int stage);

// Buffer slots of each schedule kind for stage `stage`.
int num_buffers(ScheduleKind kind, int stages, int micro_batches, int stage);

// "1f1b", "gpipe", "inference"; parse_schedule_kind returns false for anything else.
std::string_view schedule_kind_name(ScheduleKind kind);
bool parse_schedule_kind(std::string_view name, ScheduleKind& out);

// DeepSpeed's class name of the instruction, e.g. "ForwardPass".
std::string_view instruction_name(InstructionKind kind);
// "ForwardPass(buffer_id=1)" or "OptimizerStep()", as DeepSpeed prints its instructions.
std::string to_string(const Instruction& instruction);

bool is_send(InstructionKind kind);
bool is_recv(InstructionKind kind);

}  // namespace fm::pipeline
