#include "runtime/trainer.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <cmath>
#include <filesystem>
#include <thread>

#include "kernels/cpu/cpu_ops.h"
#include "model/init.h"
#include "model/io/hf_checkpoint.h"
#include "runtime/base/error.h"
#include "runtime/base/log.h"
#include "runtime/base/text.h"
#include "zero/clip.h"

namespace fm::runtime {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

zero::WarmupType warmup_type_of(WarmupType t) {
  return t == WarmupType::Linear ? zero::WarmupType::Linear : zero::WarmupType::Log;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) * 1024.0;
}

}  // namespace

zero::AdamConfig adam_config_of(const DsConfig& ds) {
  const AdamParams& p = ds.optimizer.params;
  zero::AdamConfig a;
  a.lr = p.lr;
  a.beta1 = p.betas[0];
  a.beta2 = p.betas[1];
  a.eps = p.eps;
  a.weight_decay = p.weight_decay;
  a.adam_w_mode = ds.optimizer.decoupled_weight_decay();
  return a;
}

zero::LrScheduleParams lr_schedule_params_of(const DsConfig& ds) {
  const SchedulerConfig& s = ds.scheduler;
  switch (s.type) {
    case SchedulerType::None:
      return zero::ConstantLRParams{};
    case SchedulerType::WarmupLR: {
      const auto& w = s.warmup_lr;
      return zero::WarmupLRParams{w.warmup_min_lr, w.warmup_max_lr, w.warmup_num_steps, warmup_type_of(w.warmup_type)};
    }
    case SchedulerType::WarmupDecayLR: {
      const auto& w = s.warmup_decay_lr;
      return zero::WarmupDecayLRParams{w.total_num_steps, w.warmup_min_lr, w.warmup_max_lr, w.warmup_num_steps,
                                       warmup_type_of(w.warmup_type)};
    }
    case SchedulerType::WarmupCosineLR: {
      const auto& w = s.warmup_cosine_lr;
      return zero::WarmupCosineLRParams{w.total_num_steps, w.warmup_min_ratio, w.warmup_num_steps, w.cos_min_ratio,
                                        warmup_type_of(w.warmup_type)};
    }
    case SchedulerType::OneCycle: {
      const auto& o = s.one_cycle;
      zero::OneCycleParams z;
      z.cycle_min_lr = o.cycle_min_lr;
      z.cycle_max_lr = o.cycle_max_lr;
      z.decay_lr_rate = o.decay_lr_rate;
      z.cycle_first_step_size = o.cycle_first_step_size;
      z.cycle_second_step_size = o.cycle_second_step_size;
      z.cycle_first_stair_count = o.cycle_first_stair_count;
      z.cycle_second_stair_count = o.cycle_second_stair_count;
      z.decay_step_size = o.decay_step_size;
      z.cycle_momentum = o.cycle_momentum;
      z.cycle_min_mom = o.cycle_min_mom;
      z.cycle_max_mom = o.cycle_max_mom;
      z.decay_mom_rate = o.decay_mom_rate;
      return z;
    }
    case SchedulerType::LRRangeTest: {
      const auto& r = s.lr_range_test;
      return zero::LRRangeTestParams{r.lr_range_test_min_lr, r.lr_range_test_step_size, r.lr_range_test_step_rate,
                                     r.lr_range_test_staircase};
    }
  }
  return zero::ConstantLRParams{};
}

Trainer::Trainer(RunSpec spec) : spec_(std::move(spec)) {
  const TrainArgs& a = spec_.args;
  // Opening the data validates it (files, indexes, vocabulary) before the model is allocated.
  data_ = open_run_data(spec_);

  data::BatchLayout layout;
  layout.micro_batch = static_cast<int>(spec_.micro_batch());
  layout.grad_accum = static_cast<int>(spec_.grad_accum());
  layout.dp_size = spec_.dp;
  layout.dp_rank = 0;
  layout.seq_len = static_cast<int>(a.max_seq_len);
  loader_ = std::make_unique<data::Loader>(data_.train, layout, static_cast<uint64_t>(a.seed), data_.shuffle,
                                           a.num_workers, spec_.model.vocab_size);
  if (data_.valid && a.eval_steps > 0)
    eval_loader_ = std::make_unique<data::EvalLoader>(data_.valid, layout, static_cast<int>(a.eval_iters),
                                                      spec_.model.vocab_size);

  ops_ = kernels::make_cpu_ops(0);
  model::StageShape shape{layout.micro_batch, layout.seq_len, 1};
  const int layers = static_cast<int>(spec_.model.num_layers_total());
  stage_ = std::make_unique<model::Stage>(spec_.model, 0, layers, *ops_, shape);
  init_parameters();

  range_ = zero::whole_buffer_range(stage_->layout());
  optimizer_ = std::make_unique<zero::AdamOptimizer>(*ops_, adam_config_of(spec_.ds), range_);
  schedule_ = std::make_unique<zero::LrSchedule>(lr_schedule_params_of(spec_.ds), spec_.ds.optimizer.params.lr);

  if (log::rank() == 0) metrics_ = MetricsWriter((fs::path(a.output_dir) / "metrics.jsonl").string());
}

Trainer::~Trainer() = default;

void Trainer::init_parameters() {
  const model::ParamLayout& layout = stage_->layout();
  std::vector<float> host(static_cast<size_t>(layout.total));
  if (!spec_.args.init_ckpt.empty()) {
    model::io::HfCheckpoint ckpt(spec_.args.init_ckpt);
    ckpt.load(layout, host.data());
  } else {
    model::init_params(spec_.model, layout, static_cast<uint64_t>(spec_.args.seed), host.data());
  }
  stage_->upload_params(host.data());
}

void Trainer::print_header() const {
  const TrainArgs& a = spec_.args;
  const model::LlamaConfig& m = spec_.model;
  log::info("fmengine fmtrain");
  for (const auto& n : spec_.notes) log::info("{}", n);
  log::info("model: {} ({} parameters in the flat buffer, {} in matmuls) from {}", "llama",
            human_count(static_cast<double>(stage_->num_params())), human_count(static_cast<double>(model::matmul_param_count(m))),
            m.source.empty() ? "<embedded>" : m.source);
  log::info("model: hidden {} | layers {} | heads {} (kv {}) | head_dim {} | ffn {} | vocab {} | rope_theta {}{}",
            m.hidden_size, m.num_hidden_layers, m.num_attention_heads, m.num_key_value_heads, m.head_dim,
            m.intermediate_size, m.vocab_size, m.rope_theta,
            m.rope_scaling.rope_type.empty() ? "" : " | rope_scaling " + m.rope_scaling.rope_type);
  log::info("data: {}", data_.describe());
  log::info("batch: global {} sequences = micro {} x grad_accum {} x data-parallel {} | seq {} | {} tokens per step",
            spec_.global_batch(), spec_.micro_batch(), spec_.grad_accum(), spec_.dp, a.max_seq_len,
            spec_.tokens_per_step());
  log::info("steps: {} | total tokens {}", a.train_steps,
            human_count(static_cast<double>(spec_.tokens_per_step() * a.train_steps)));
  const model::MemoryPlan plan = stage_->memory_plan();
  log::info("memory (rank 0): parameters {} | gradients {} | optimizer state {} | activations {} ({} slot(s)) | "
            "workspace {}",
            human_bytes(static_cast<double>(plan.param_bytes)), human_bytes(static_cast<double>(plan.grad_bytes)),
            human_bytes(2.0 * 4.0 * static_cast<double>(optimizer_->state_numel())),
            human_bytes(static_cast<double>(plan.activation_bytes_per_slot * plan.num_slots)), plan.num_slots,
            human_bytes(static_cast<double>(plan.workspace_bytes)));
  const DataType prec = spec_.ds.precision();
  if (prec != DataType::FP32)
    log::info("precision: the config asks for {}; the CPU backend computes in fp32", to_string(prec));
  else
    log::info("precision: fp32 (CPU backend)");
  log::info("resolved config:\n{}", ds_config_to_json(spec_.ds));
}

StepResult Trainer::train_step() {
  const auto t0 = Clock::now();
  StepResult r;
  std::vector<data::MicroBatch> batches = loader_->next_step();
  const int64_t targets = loader_->step_global_targets();
  r.targets = targets;
  // Every micro-batch's dlogits carry 1/targets(global batch): summed over micro-batches (and
  // ranks) the gradients are those of the mean loss over the whole global batch.
  const float grad_scale = targets > 0 ? 1.0f / static_cast<float>(targets) : 0.0f;

  stage_->zero_grads();
  double loss_sum = 0;
  for (const data::MicroBatch& mb : batches) {
    loss_sum += stage_->forward(0, mb.inputs.data(), nullptr, mb.targets.data(), grad_scale, true);
    stage_->backward(0, nullptr);
  }
  r.loss = targets > 0 ? loss_sum / static_cast<double>(targets) : 0.0;

  const kernels::View grads = kernels::f32(stage_->grads());
  const double sum_sq = zero::grad_sum_squares(*ops_, range_, grads);
  r.grad_norm = zero::global_grad_norm(sum_sq);
  r.lr = schedule_->lr();
  if (!std::isfinite(r.grad_norm)) {
    r.skipped = true;
    log::warn("step {}: gradient norm is {}; skipping the update", step_ + 1, r.grad_norm);
  } else {
    const double coef = zero::clip_coefficient(r.grad_norm, spec_.ds.gradient_clipping);
    if (coef < 1.0) ops_->scale(grads, static_cast<float>(coef), stage_->num_params());
    optimizer_->set_lr(r.lr);
    if (auto betas = schedule_->betas()) optimizer_->set_betas(betas->beta1, betas->beta2);
    optimizer_->step(kernels::f32(stage_->params()), grads);
    schedule_->step();
  }
  ++step_;
  r.step = step_;
  r.step_seconds = seconds_since(t0);
  tokens_seen_ += static_cast<double>(spec_.tokens_per_step());
  return r;
}

std::optional<double> Trainer::evaluate() {
  if (!eval_loader_) return std::nullopt;
  double loss_sum = 0;
  int64_t targets = 0;
  for (int it = 0; it < eval_loader_->eval_iters(); ++it) {
    data::StepBatch b = eval_loader_->batch(it);
    for (const data::MicroBatch& mb : b.micro_batches)
      loss_sum += stage_->forward(0, mb.inputs.data(), nullptr, mb.targets.data(), 0.0f, false);
    targets += b.global_targets;
  }
  if (targets == 0) return std::nullopt;
  return loss_sum / static_cast<double>(targets);
}

void Trainer::log_step(const StepResult& r) {
  const double tps = static_cast<double>(spec_.tokens_per_step()) / r.step_seconds;
  log::info("step {:>6}/{} | loss {:.4f} | lr {:.3e} | grad_norm {:.4f} | {:.0f} tokens/s | {:.1f} ms{}", r.step,
            spec_.args.train_steps, r.loss, r.lr, r.grad_norm, tps, 1000.0 * r.step_seconds,
            r.skipped ? " | skipped" : "");
  metrics_.write(r.step, {{"loss", r.loss},
                          {"lr", r.lr},
                          {"grad_norm", r.grad_norm},
                          {"tokens_per_s", tps},
                          {"step_time_s", r.step_seconds},
                          {"tokens", tokens_seen_}});
}

StepResult Trainer::train() {
  const TrainArgs& a = spec_.args;
  const auto t0 = Clock::now();
  StepResult last;
  double first_loss = std::nan("");
  while (step_ < a.train_steps) {
    last = train_step();
    if (std::isnan(first_loss)) first_loss = last.loss;
    if (a.log_steps > 0 && (last.step % a.log_steps == 0 || last.step == a.train_steps)) log_step(last);
    if (a.eval_steps > 0 && (last.step % a.eval_steps == 0 || last.step == a.train_steps)) {
      if (auto vl = evaluate()) {
        log::info("eval   {:>6}/{} | val_loss {:.4f}", last.step, a.train_steps, *vl);
        metrics_.write(last.step, {{"val_loss", *vl}});
      }
    }
  }
  const double total = seconds_since(t0);
  log::info("done: {} steps in {:.1f} s | first loss {:.4f} -> last loss {:.4f} | {:.0f} tokens/s | peak RSS {}",
            step_, total, first_loss, last.loss, tokens_seen_ / total, human_bytes(peak_rss_bytes()));
  return last;
}

}  // namespace fm::runtime
