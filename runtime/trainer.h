// The training loop of one rank: its pipeline stage of one data-parallel replica.
//
// Built from a validated RunSpec and the rank's communicators: the stage holds the layers its
// pipeline stage owns (DeepSpeed's partitioning), ZeRO splits its optimizer state (and, at stage
// 2, its gradients) over the stage's data-parallel peers, and the pipeline executor runs the 1F1B
// (or GPipe) schedule. One process is the case pipeline = data = 1.
//
// A step: the first and last stage read this replica's micro-batches (the same ones); the
// schedule runs forward and backward passes, exchanging activations and their gradients with
// the neighbouring stages; the last stage's loss gradient is scaled by 1/targets(global batch),
// so gradients are summed, not averaged, over micro-batches and replicas; tied embeddings sum
// their gradients over the first and last stage; ZeRO reduces the gradients; the global norm
// (all stages, all partitions, tied weights once) clips them; AdamW steps with the schedule's lr;
// then the schedule advances (DeepSpeed's order: step k uses the lr of t = k-2). The loss is the
// mean over the non-ignored targets of the global batch, reported by rank 0.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "data/loader.h"
#include "kernels/ops.h"
#include "model/stage.h"
#include "pipeline/executor.h"
#include "pipeline/schedule.h"
#include "runtime/comm/topology.h"
#include "runtime/metrics.h"
#include "runtime/run_spec.h"
#include "zero/lr_schedule.h"
#include "zero/zero_optimizer.h"

namespace fm::runtime {

struct StepResult {
  int64_t step = 0;         // 1-based, after the step
  double loss = 0;          // mean over the global batch's targets
  double grad_norm = 0;     // before clipping
  double lr = 0;            // used by this step
  double step_seconds = 0;
  int64_t targets = 0;      // non-ignored targets of the global batch
  bool skipped = false;     // non-finite gradient norm: no update
};

// Bytes one rank holds, measured from its allocations (the memory report).
struct RankMemory {
  int64_t params = 0, grads = 0, optimizer_state = 0, activations = 0, workspace = 0;
};

class Trainer {
 public:
  // `ops` is the compute backend (CPU, or CUDA with `groups` built over NCCL); everything the
  // stage allocates lives in its memory.
  Trainer(RunSpec spec, const comm::Topology& topology, comm::RankGroups groups, std::unique_ptr<kernels::Ops> ops);
  ~Trainer();

  // The start header on rank 0: layout, model, batch, tokens, memory per rank, resolved config.
  // Collective (gathers every rank's memory).
  void print_header();
  // Runs until --train_steps. Returns the last step's result (loss and norm on every rank).
  StepResult train();

  StepResult train_step();
  // Mean loss over --eval_iters batches of the validation split; nullopt without one. Collective.
  std::optional<double> evaluate();

  RankMemory memory() const;
  const std::vector<int>& stage_cuts() const { return cuts_; }

 private:
  void init_parameters();
  // Copies of backend memory in host memory (the checkpoint code reads and writes host memory).
  std::vector<float> to_host(const float* backend, int64_t n) const;
  void from_host(float* backend, const std::vector<float>& host) const;
  void resume();
  void save_checkpoint();
  void log_step(const StepResult& r);
  std::vector<pipeline::MicroBatchInput> inputs_of(const std::vector<data::MicroBatch>& mbs) const;

  RunSpec spec_;
  comm::Topology topo_;
  comm::RankGroups groups_;
  std::vector<int> cuts_;  // stage s holds layers [cuts_[s], cuts_[s+1])
  bool needs_data_ = false;
  std::unique_ptr<kernels::Ops> ops_;
  std::unique_ptr<model::Stage> stage_;
  std::unique_ptr<pipeline::ModelStage> stage_compute_;
  std::unique_ptr<zero::ZeroOptimizer> zero_;
  std::unique_ptr<zero::LrSchedule> schedule_;
  std::unique_ptr<pipeline::PipelineExecutor> executor_;
  pipeline::Schedule train_schedule_, eval_schedule_;
  data::DataSources data_;
  std::unique_ptr<data::Loader> loader_;
  std::unique_ptr<data::EvalLoader> eval_loader_;
  MetricsWriter metrics_;
  int64_t step_ = 0;
  int64_t skipped_ = 0;
  double tokens_seen_ = 0;
  std::string resumed_from_;
};

}  // namespace fm::runtime
