// The training loop of one rank: builds the stage, optimizer, LR schedule and loader from a
// validated RunSpec, then runs --train_steps steps with logging, metrics and evaluation.
//
// A step: load this rank's micro-batches, forward and backward each (parameter gradients
// accumulate; the loss is the mean over the non-ignored targets of the global batch, so every
// micro-batch's gradient is scaled by 1/targets(global batch)), clip by the global norm, AdamW with
// the schedule's lr, then advance the schedule (DeepSpeed's order: step k uses the lr of t = k-2).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "data/loader.h"
#include "kernels/ops.h"
#include "model/stage.h"
#include "runtime/metrics.h"
#include "runtime/run_spec.h"
#include "zero/adam.h"
#include "zero/lr_schedule.h"

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

class Trainer {
 public:
  explicit Trainer(RunSpec spec);
  ~Trainer();

  // The start header: model, batch, tokens, memory plan, resolved config.
  void print_header() const;
  // Runs until --train_steps. Returns the last step's result.
  StepResult train();

  StepResult train_step();
  // Mean loss over --eval_iters batches of the validation split; nullopt without one.
  std::optional<double> evaluate();

 private:
  void init_parameters();
  void log_step(const StepResult& r);

  RunSpec spec_;
  std::unique_ptr<kernels::Ops> ops_;
  std::unique_ptr<model::Stage> stage_;
  std::unique_ptr<zero::AdamOptimizer> optimizer_;
  std::unique_ptr<zero::LrSchedule> schedule_;
  zero::ParamRange range_;
  data::DataSources data_;
  std::unique_ptr<data::Loader> loader_;
  std::unique_ptr<data::EvalLoader> eval_loader_;
  MetricsWriter metrics_;
  int64_t step_ = 0;
  double tokens_seen_ = 0;
};

// Converts the config's optimizer and scheduler sections to the optimizer's terms.
zero::AdamConfig adam_config_of(const DsConfig& ds);
zero::LrScheduleParams lr_schedule_params_of(const DsConfig& ds);

}  // namespace fm::runtime
