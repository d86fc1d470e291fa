#include "runtime/trainer.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <cmath>
#include <filesystem>

#include "model/init.h"
#include "model/io/hf_checkpoint.h"
#include "runtime/checkpoint/distributed.h"
#include "runtime/checkpoint/export.h"
#include "runtime/checkpoint/xxhash64.h"
#include "runtime/base/error.h"
#include "runtime/base/log.h"
#include "runtime/base/text.h"
#include "zero/clip.h"

namespace fm::runtime {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) * 1024.0;
}

pipeline::ScheduleKind train_schedule_kind(const DsConfig& ds) {
  return ds.pipeline.schedule == PipeSchedule::GPipe ? pipeline::ScheduleKind::GPipe : pipeline::ScheduleKind::OneFOneB;
}

}  // namespace

Trainer::Trainer(RunSpec spec, const comm::Topology& topology, comm::RankGroups groups,
                 std::unique_ptr<kernels::Ops> ops)
    : spec_(std::move(spec)), topo_(topology), groups_(std::move(groups)), cuts_(spec_.cuts), ops_(std::move(ops)) {
  const TrainArgs& a = spec_.args;
  const int s = groups_.coord.stage, p = spec_.pipe;
  const bool first = s == 0, last = s == p - 1;
  const int gas = static_cast<int>(spec_.grad_accum());

  // Only the first stage (tokens) and the last (targets) read data; opening it validates the
  // files and the vocabulary before the model is allocated.
  needs_data_ = first || last;
  data::BatchLayout layout;
  layout.micro_batch = static_cast<int>(spec_.micro_batch());
  layout.grad_accum = gas;
  layout.dp_size = spec_.dp;
  layout.dp_rank = groups_.coord.data;
  layout.seq_len = static_cast<int>(a.max_seq_len);
  if (needs_data_) {
    data_ = open_run_data(spec_);
    loader_ = std::make_unique<data::Loader>(data_.train, layout, static_cast<uint64_t>(a.seed), data_.shuffle,
                                             a.num_workers, spec_.model.vocab_size);
    if (data_.valid && a.eval_steps > 0)
      eval_loader_ = std::make_unique<data::EvalLoader>(data_.valid, layout, static_cast<int>(a.eval_iters),
                                                        spec_.model.vocab_size);
  }

  train_schedule_ = pipeline::make_schedule(train_schedule_kind(spec_.ds), p, gas, s);
  eval_schedule_ = pipeline::make_schedule(pipeline::ScheduleKind::Inference, p, gas, s);
  // The last stage of 1F1B runs each backward right after its forward: one slot suffices there.
  int slots = train_schedule_.num_buffers;
  if (last && train_schedule_.kind == pipeline::ScheduleKind::OneFOneB) slots = 1;

  const int zero_stage = static_cast<int>(spec_.ds.zero_optimization.stage);
  const int64_t numel = model::make_param_layout(spec_.model, cuts_[s], cuts_[s + 1]).total;
  model::StageShape shape{layout.micro_batch, layout.seq_len, slots,
                          zero::ZeroOptimizer::buffer_elements(numel, spec_.dp),
                          zero::ZeroOptimizer::keeps_full_grads(zero_stage)};
  stage_ = std::make_unique<model::Stage>(spec_.model, cuts_[s], cuts_[s + 1], *ops_, shape);
  init_parameters();

  zero::ZeroSettings zs;
  zs.stage = zero_stage;
  zs.reduce_bucket_size = spec_.ds.zero_optimization.reduce_bucket_size;
  zs.allgather_bucket_size = spec_.ds.zero_optimization.allgather_bucket_size;
  const bool tied_across = spec_.model.tie_word_embeddings && p > 1 && (first || last);
  zero_ = std::make_unique<zero::ZeroOptimizer>(*stage_, adam_config_of(spec_.ds), zs, groups_.data_parallel,
                                                tied_across ? groups_.tied : nullptr);
  schedule_ = std::make_unique<zero::LrSchedule>(lr_schedule_params_of(spec_.ds), spec_.ds.optimizer.params.lr);
  stage_compute_ = std::make_unique<pipeline::ModelStage>(*stage_);
  executor_ = std::make_unique<pipeline::PipelineExecutor>(*stage_compute_, groups_.pipeline, groups_.prev_stage,
                                                           groups_.next_stage);
  executor_->reserve(std::max(train_schedule_.num_buffers, eval_schedule_.num_buffers));

  resume();
  if (groups_.world->rank() == 0) metrics_ = MetricsWriter((fs::path(a.output_dir) / "metrics.jsonl").string());
}

Trainer::~Trainer() = default;

void Trainer::init_parameters() {
  const model::ParamLayout& layout = stage_->layout();
  std::vector<float> host(static_cast<size_t>(layout.total));
  if (!spec_.args.init_ckpt.empty() && checkpoint::is_fm_checkpoint(spec_.args.init_ckpt)) {
    checkpoint::load_weights(spec_.args.init_ckpt, spec_.model, layout, host.data());
  } else if (!spec_.args.init_ckpt.empty()) {
    model::io::HfCheckpoint ckpt(spec_.args.init_ckpt);
    ckpt.load(layout, host.data());
  } else {
    model::init_params(spec_.model, layout, static_cast<uint64_t>(spec_.args.seed), host.data());
  }
  stage_->upload_params(host.data());
  // Tied copies on the first and last stage start equal (they are initialised by name, but the
  // first stage's copy is the reference, as DeepSpeed broadcasts it).
  if (spec_.model.tie_word_embeddings && spec_.pipe > 1 && groups_.tied)
    for (const model::ParamInfo& info : layout.params)
      if (!info.tied_key.empty())
        groups_.tied->broadcast(stage_->params() + info.offset, size_t(info.numel()), comm::DType::F32, 0);
}

void Trainer::resume() {
  const TrainArgs& a = spec_.args;
  const model::ParamLayout& layout = stage_->layout();
  const zero::ParamRange& own = zero_->range();
  checkpoint::ResumeRequest rq;
  rq.mode = a.resume;
  rq.path = a.resume_path;
  rq.output_dir = a.output_dir;
  rq.model = &spec_.model;
  rq.layout = &layout;
  rq.state_begin = own.begin;
  rq.state_end = own.end;
  checkpoint::ResumeResult res = checkpoint::open_for_resume(*groups_.world, rq);
  if (!res.reader) return;
  const checkpoint::CheckpointReader& r = *res.reader;
  std::vector<float> host(static_cast<size_t>(layout.total));
  std::vector<float> m(static_cast<size_t>(own.size())), v(static_cast<size_t>(own.size()));
  checkpoint::load_rank_state(r, layout, own.begin, own.end, host.data(), m.data(), v.data());
  stage_->upload_params(host.data());
  from_host(zero_->adam().exp_avg().as<float>(), m);
  from_host(zero_->adam().exp_avg_sq().as<float>(), v);
  const checkpoint::TrainState& st = r.state();
  step_ = st.global_step;
  skipped_ = st.skipped_steps;
  zero_->adam().set_step_count(st.optimizer_steps);
  schedule_->set_last_batch_iteration(st.scheduler_t);
  if (loader_) loader_->restore(data::loader_state_from_json(st.loader_json, r.manifest().path));
  tokens_seen_ = static_cast<double>(spec_.tokens_per_step() * step_);
  resumed_from_ = r.dir();
  for (const std::string& s : res.skipped) log::warn("resume: skipped {}", s);
  log::info("resumed from {} at step {}", resumed_from_, step_);
  if (step_ >= a.train_steps)
    log::info("the checkpoint is at step {} and --train_steps is {}: nothing left to train", step_, a.train_steps);
}

void Trainer::save_checkpoint() {
  const TrainArgs& a = spec_.args;
  const model::ParamLayout& layout = stage_->layout();
  const zero::ParamRange& own = zero_->range();
  const checkpoint::ShardRange sr =
      checkpoint::shard_range(zero_->zero_stage(), spec_.dp, groups_.coord.data, layout.total);
  checkpoint::SaveRequest req;
  req.output_dir = a.output_dir;
  req.step = step_;
  req.writes = sr.writes;
  // This rank's shard of parameters and Adam moments, in host memory.
  const int64_t n = sr.end - sr.begin;
  const std::vector<float> params = to_host(stage_->params() + sr.begin, n);
  const std::vector<float> m = to_host(zero_->adam().exp_avg().as<float>() + (sr.begin - own.begin), n);
  const std::vector<float> v = to_host(zero_->adam().exp_avg_sq().as<float>() + (sr.begin - own.begin), n);
  req.shard = {groups_.coord.stage, groups_.coord.data, &layout, sr.begin, sr.end, params.data(), m.data(), v.data()};
  req.model = &spec_.model;
  req.topology = {spec_.pipe, spec_.dp, zero_->zero_stage(), groups_.world->size(), cuts_};
  req.state.global_step = step_;
  req.state.optimizer_steps = zero_->adam().step_count();
  req.state.scheduler_t = schedule_->last_batch_iteration();
  req.state.skipped_steps = skipped_;
  if (loader_) req.state.loader_json = data::loader_state_to_json(loader_->state());
  const std::string config = ds_config_to_json(spec_.ds);
  req.state.config_hash = checkpoint::checksum_hex(checkpoint::xxh64(config.data(), config.size()));
  req.state.tokenizer = a.tokenizer;
  req.max_checkpoints = static_cast<int>(a.max_checkpoints);
  req.keep = resumed_from_;
  const checkpoint::SaveResult res = checkpoint::save_checkpoint(*groups_.world, req);
  log::info("saved checkpoint {} ({}, {:.2f} s)", res.path, human_bytes(static_cast<double>(res.bytes)), res.seconds);
}

std::vector<float> Trainer::to_host(const float* backend, int64_t n) const {
  std::vector<float> host(static_cast<size_t>(std::max<int64_t>(n, 0)));
  if (n > 0) ops_->copy(kernels::f32(host.data()), kernels::f32(backend), n);
  ops_->synchronize();
  return host;
}

void Trainer::from_host(float* backend, const std::vector<float>& host) const {
  if (!host.empty()) ops_->copy(kernels::f32(backend), kernels::f32(host.data()), int64_t(host.size()));
  ops_->synchronize();
}

RankMemory Trainer::memory() const {
  RankMemory m;
  const zero::ZeroFootprint f = zero_->footprint();
  const model::MemoryPlan plan = stage_->memory_plan();
  m.params = f.params;
  m.grads = f.grads;
  m.optimizer_state = f.optimizer_state;
  m.activations = plan.activation_bytes_per_slot * plan.num_slots + executor_->buffer_bytes();
  m.workspace = plan.workspace_bytes;
  return m;
}

void Trainer::print_header() {
  const TrainArgs& a = spec_.args;
  const model::LlamaConfig& m = spec_.model;
  const comm::CommPtr& world = groups_.world;
  // Every rank's measured memory, gathered for the report.
  const RankMemory mine = memory();
  std::vector<int64_t> local{mine.params, mine.grads, mine.optimizer_state, mine.activations, mine.workspace};
  std::vector<int64_t> all(local.size() * size_t(world->size()));
  world->all_gather(local.data(), all.data(), local.size(), comm::DType::I64);
  if (world->rank() != 0) return;

  log::info("fmengine fmtrain");
  for (const auto& n : spec_.notes) log::info("{}", n);
  log::info("model: llama, {} parameters ({} in matmuls) from {}",
            human_count(static_cast<double>(model::make_param_layout(m, 0, int(m.num_layers_total())).total)),
            human_count(static_cast<double>(model::matmul_param_count(m))), m.source.empty() ? "<embedded>" : m.source);
  log::info("model: hidden {} | layers {} | heads {} (kv {}) | head_dim {} | ffn {} | vocab {} | rope_theta {}{}",
            m.hidden_size, m.num_hidden_layers, m.num_attention_heads, m.num_key_value_heads, m.head_dim,
            m.intermediate_size, m.vocab_size, m.rope_theta,
            m.rope_scaling.rope_type.empty() ? "" : " | rope_scaling " + m.rope_scaling.rope_type);
  log::info("layout: {} ranks = pipeline {} x data {} | ZeRO stage {} | schedule {} | partition {}", world->size(),
            spec_.pipe, spec_.dp, spec_.ds.zero_optimization.stage, pipeline::schedule_kind_name(train_schedule_.kind),
            spec_.ds.pipeline.partition_method);
  for (int s = 0; s < spec_.pipe; ++s)
    log::info("  stage {}: layers [{}, {}) of {} (0 = embedding, {} = head)", s, cuts_[size_t(s)], cuts_[size_t(s) + 1],
              m.num_layers_total(), m.num_layers_total() - 1);
  log::info("ranks:\n{}", topo_.table());
  if (needs_data_) log::info("data: {}", data_.describe());
  log::info("batch: global {} sequences = micro {} x grad_accum {} x data-parallel {} | seq {} | {} tokens per step",
            spec_.global_batch(), spec_.micro_batch(), spec_.grad_accum(), spec_.dp, a.max_seq_len,
            spec_.tokens_per_step());
  log::info("steps: {} | total tokens {}", a.train_steps,
            human_count(static_cast<double>(spec_.tokens_per_step() * a.train_steps)));
  log::info("memory per rank (bytes, measured from allocations):");
  log::info("  {:>4} {:>5} {:>4} {:>14} {:>14} {:>16} {:>14} {:>14}", "rank", "stage", "dp", "parameters", "gradients",
            "optimizer_state", "activations", "workspace");
  for (int r = 0; r < world->size(); ++r) {
    const int64_t* v = all.data() + size_t(r) * local.size();
    const comm::RankCoord c = topo_.coord(r);
    log::info("  {:>4} {:>5} {:>4} {:>14} {:>14} {:>16} {:>14} {:>14}", r, c.stage, c.data, v[0], v[1], v[2], v[3],
              v[4]);
  }
  const DataType prec = spec_.ds.precision();
  const std::string backend = a.device == "cuda" ? "the CUDA backend" : "the CPU backend";
  if (prec != DataType::FP32)
    log::info("precision: the config asks for {}; {} computes in fp32", to_string(prec), backend);
  else
    log::info("precision: fp32 ({})", backend);
  log::info("resolved config:\n{}", ds_config_to_json(spec_.ds));
}

std::vector<pipeline::MicroBatchInput> Trainer::inputs_of(const std::vector<data::MicroBatch>& mbs) const {
  std::vector<pipeline::MicroBatchInput> in(mbs.size());
  for (size_t i = 0; i < mbs.size(); ++i) in[i] = {mbs[i].inputs.data(), mbs[i].targets.data()};
  return in;
}

StepResult Trainer::train_step() {
  const auto t0 = Clock::now();
  const comm::CommPtr& world = groups_.world;
  StepResult r;
  std::vector<data::MicroBatch> batches;
  int64_t targets = 0;
  if (loader_) {
    batches = loader_->next_step();
    targets = loader_->step_global_targets();
  }
  // Every micro-batch's dlogits carry 1/targets(global batch): summed over micro-batches and
  // replicas the gradients are those of the mean loss over the whole global batch.
  const float grad_scale = targets > 0 ? 1.0f / static_cast<float>(targets) : 0.0f;
  r.lr = schedule_->lr();

  pipeline::StepHooks hooks;
  hooks.after_backward = [&] { zero_->after_backward(); };
  hooks.reduce_tied_grads = [&] { zero_->reduce_tied_grads(); };
  hooks.reduce_grads = [&] { zero_->reduce_grads(); };
  hooks.optimizer_step = [&] {
    // Norm over every stage and partition (tied weights once): one world all-reduce.
    const double sum_sq = world->all_reduce_value(zero_->local_grad_sum_squares());
    r.grad_norm = zero::global_grad_norm(sum_sq);
    if (!std::isfinite(r.grad_norm)) {
      r.skipped = true;
      return;
    }
    const double coef = zero::clip_coefficient(r.grad_norm, spec_.ds.gradient_clipping);
    double b1 = spec_.ds.optimizer.params.betas[0], b2 = spec_.ds.optimizer.params.betas[1];
    if (auto betas = schedule_->betas()) b1 = betas->beta1, b2 = betas->beta2;
    zero_->step(coef, r.lr, b1, b2);
    schedule_->step();
  };

  zero_->begin_step();
  const std::vector<pipeline::MicroBatchInput> inputs = inputs_of(batches);
  const double loss_sum = executor_->run(train_schedule_, inputs, grad_scale, true, hooks);
  if (r.skipped && world->rank() == 0)
    log::warn("step {}: gradient norm is {}; skipping the update", step_ + 1, r.grad_norm);

  // Loss and target count of the global batch: the last stage's ranks hold the sums.
  double sums[2] = {loss_sum, groups_.coord.stage == spec_.pipe - 1 && groups_.coord.data == 0
                                  ? static_cast<double>(targets)
                                  : 0.0};
  world->all_reduce(sums, 2, comm::DType::F64, comm::ReduceOp::Sum);
  r.targets = static_cast<int64_t>(sums[1]);
  r.loss = r.targets > 0 ? sums[0] / sums[1] : 0.0;
  ++step_;
  r.step = step_;
  r.step_seconds = seconds_since(t0);
  tokens_seen_ += static_cast<double>(spec_.tokens_per_step());
  return r;
}

std::optional<double> Trainer::evaluate() {
  // Whether there is a validation split is known to the data-reading stages; agree on it.
  const comm::CommPtr& world = groups_.world;
  const int64_t iters = world->all_reduce_value<int64_t>(eval_loader_ ? eval_loader_->eval_iters() : 0,
                                                         comm::ReduceOp::Max);
  if (iters == 0) return std::nullopt;
  double sums[2] = {0, 0};
  for (int it = 0; it < iters; ++it) {
    data::StepBatch b;
    if (eval_loader_) b = eval_loader_->batch(it);
    const std::vector<pipeline::MicroBatchInput> inputs = inputs_of(b.micro_batches);
    sums[0] += executor_->run(eval_schedule_, inputs, 0.0f, false, {});
    if (groups_.coord.stage == spec_.pipe - 1 && groups_.coord.data == 0) sums[1] += double(b.global_targets);
  }
  world->all_reduce(sums, 2, comm::DType::F64, comm::ReduceOp::Sum);
  if (sums[1] == 0) return std::nullopt;
  return sums[0] / sums[1];
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
  const int64_t first_step = step_;
  while (step_ < a.train_steps) {
    last = train_step();
    if (last.skipped) ++skipped_;
    if (std::isnan(first_loss)) first_loss = last.loss;
    if (a.log_steps > 0 && (last.step % a.log_steps == 0 || last.step == a.train_steps)) log_step(last);
    if (a.eval_steps > 0 && (last.step % a.eval_steps == 0 || last.step == a.train_steps)) {
      if (auto vl = evaluate()) {
        log::info("eval   {:>6}/{} | val_loss {:.4f}", last.step, a.train_steps, *vl);
        metrics_.write(last.step, {{"val_loss", *vl}});
      }
    }
    if ((a.save_steps > 0 && last.step % a.save_steps == 0) || last.step == a.train_steps) save_checkpoint();
  }
  const double total = seconds_since(t0);
  if (!std::isnan(first_loss))
    log::info("done: {} steps in {:.1f} s | first loss {:.4f} -> last loss {:.4f} | {:.0f} tokens/s | peak RSS {}",
              step_, total, first_loss, last.loss, static_cast<double>(spec_.tokens_per_step()) *
              static_cast<double>(last.step - first_step) / total, human_bytes(peak_rss_bytes()));
  return last;
}

}  // namespace fm::runtime
