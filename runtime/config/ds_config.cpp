#include "runtime/config/ds_config.h"

#include <fmt/format.h>

#include <limits>
#include <regex>

#include "runtime/base/error.h"
#include "runtime/base/text.h"
#include "runtime/config/json_reader.h"
#include "runtime/config/schema.h"

namespace fm::runtime {

using schema::check;
using schema::SectionOpts;

// ---- enum names (indexed by value) -----------------------------------------------------------------
namespace schema {

#define FM_ENUM_INFO(E, ICASE, WHAT, NAMES, UNSUPPORTED)                  \
  template <>                                                             \
  struct EnumInfo<E> {                                                    \
    static const std::vector<std::string>& names() {                      \
      static const std::vector<std::string> v NAMES;                      \
      return v;                                                           \
    }                                                                     \
    static bool icase() { return ICASE; }                                 \
    static const std::vector<std::string>& unsupported() {                \
      static const std::vector<std::string> v UNSUPPORTED;                \
      return v;                                                           \
    }                                                                     \
    static std::string what() { return WHAT; }                            \
  };

// DeepSpeed matches its built-in optimizer names case-insensitively.
FM_ENUM_INFO(OptimizerType, true, "optimizer", ({"Adam", "AdamW"}),
             ({"Adagrad", "Lamb", "OneBitAdam", "ZeroOneAdam", "OneBitLamb", "Lion", "MuAdam", "MuAdamW",
               "MuSGD", "Muon", "SGD", "RMSprop", "Adadelta", "Adamax", "NAdam", "RAdam", "SparseAdam",
               "ASGD", "LBFGS", "Rprop", "Adafactor", "FusedAdam", "CPUAdam"}))
// DeepSpeed looks schedulers up by exact class name.
FM_ENUM_INFO(SchedulerType, false, "scheduler",
             ({"", "WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "LRRangeTest"}),
             ({"StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau",
               "CyclicLR", "OneCycleLR", "CosineAnnealingWarmRestarts", "LambdaLR", "MultiplicativeLR",
               "ConstantLR", "LinearLR", "PolynomialLR", "SequentialLR", "ChainedScheduler"}))
FM_ENUM_INFO(WarmupType, false, "warmup_type", ({"log", "linear"}), ({}))
FM_ENUM_INFO(DataType, false, "data type", ({"fp32", "fp16", "bf16"}), ({}))
FM_ENUM_INFO(OffloadDevice, false, "offload device", ({"none", "cpu", "nvme"}), ({}))
FM_ENUM_INFO(PipeSchedule, false, "pipeline schedule", ({"1f1b", "gpipe"}), ({"interleaved", "zero_bubble"}))
// DeepSpeed upper-cases tag_validation before comparing.
FM_ENUM_INFO(TagValidation, true, "tag_validation mode", ({"Warn", "Ignore", "Fail"}), ({}))

#undef FM_ENUM_INFO

}  // namespace schema

const char* to_string(OptimizerType t) { return schema::EnumInfo<OptimizerType>::names()[size_t(t)].c_str(); }
const char* to_string(SchedulerType t) { return schema::EnumInfo<SchedulerType>::names()[size_t(t)].c_str(); }
const char* to_string(WarmupType t) { return schema::EnumInfo<WarmupType>::names()[size_t(t)].c_str(); }
const char* to_string(DataType t) { return schema::EnumInfo<DataType>::names()[size_t(t)].c_str(); }
const char* to_string(OffloadDevice t) { return schema::EnumInfo<OffloadDevice>::names()[size_t(t)].c_str(); }
const char* to_string(PipeSchedule t) { return schema::EnumInfo<PipeSchedule>::names()[size_t(t)].c_str(); }
const char* to_string(TagValidation t) { return schema::EnumInfo<TagValidation>::names()[size_t(t)].c_str(); }

DataType DsConfig::precision() const {
  if (bf16.enabled) return DataType::BF16;
  if (fp16.enabled) return DataType::FP16;
  return DataType::FP32;
}

// ---- the schema: one line per key ----------------------------------------------------------------
// Defaults are the member initialisers in ds_config.h.

template <class V>
void describe(V& v, AdamParams& s) {
  v.field("lr", s.lr, "learning rate", check().gt(0).example("a number, e.g. 1e-4"));
  v.field("betas", s.betas, "Adam's (beta1, beta2), each in [0, 1)", check().ge(0).lt(1).example("[0.9, 0.999]"));
  v.field("eps", s.eps, "added to the denominator", check().gt(0));
  v.field("weight_decay", s.weight_decay, "weight decay coefficient", check().ge(0));
  v.field("adam_w_mode", s.adam_w_mode, "type Adam only: true = decoupled weight decay (AdamW), false = L2 in the gradient");
  v.field("bias_correction", s.bias_correction, "Adam bias correction of the moments");
  v.field("torch_adam", s.torch_adam, "accepted for compatibility; no effect (there is one Adam implementation)");
  v.refuse("max_grad_norm", "'max_grad_norm' is not supported as an optimizer parameter",
           "use the top-level \"gradient_clipping\" key, e.g. \"gradient_clipping\": 1.0");
  v.refuse("amsgrad", "AMSGrad is not supported (DeepSpeed's FusedAdam refuses it too)", "remove \"amsgrad\"");
}

template <class V>
void describe(V& v, OptimizerConfig& s) {
  v.field("type", s.type, "Adam or AdamW (case-insensitive, as DeepSpeed)", check().required());
  v.section("params", s.params, "optimizer parameters");
}

// The schedules' parameter structs are zero's (zero/lr_schedule.h): their describe() overloads live
// in the visitors' namespace, where argument-dependent lookup from schema.h finds them.
namespace schema {
template <class V>
void describe(V& v, WarmupLRParams& s) {
  v.field("warmup_min_lr", s.warmup_min_lr, "lr at step 0; \"auto\" = 0", check().ge(0).allow_auto());
  v.field("warmup_max_lr", s.warmup_max_lr,
          "lr after warmup; when not written (or \"auto\"): optimizer.params.lr", check().ge(0).allow_auto());
  v.field("warmup_num_steps", s.warmup_num_steps, "warmup length in optimizer steps", check().gt(0));
  v.field("warmup_type", s.warmup_type, "warmup curve");
}

template <class V>
void describe(V& v, WarmupDecayLRParams& s) {
  v.field("total_num_steps", s.total_num_steps, "steps until the lr reaches 0; \"auto\" = --train_steps",
          check().gt(0).required().allow_auto());
  v.field("warmup_min_lr", s.warmup_min_lr, "lr at step 0; \"auto\" = 0", check().ge(0).allow_auto());
  v.field("warmup_max_lr", s.warmup_max_lr, "lr after warmup; \"auto\" = optimizer.params.lr",
          check().ge(0).allow_auto());
  v.field("warmup_num_steps", s.warmup_num_steps, "warmup length in optimizer steps", check().gt(0));
  v.field("warmup_type", s.warmup_type, "warmup curve");
}

template <class V>
void describe(V& v, WarmupCosineLRParams& s) {
  v.field("total_num_steps", s.total_num_steps, "length of warmup + cosine decay; \"auto\" = --train_steps",
          check().gt(0).required().allow_auto());
  v.field("warmup_min_ratio", s.warmup_min_ratio, "lr ratio at step 0", check().ge(0).le(1));
  v.field("warmup_num_steps", s.warmup_num_steps, "warmup length in optimizer steps", check().gt(0));
  v.field("cos_min_ratio", s.cos_min_ratio, "lr ratio at the end of the decay", check().ge(0).le(1));
  v.field("warmup_type", s.warmup_type, "warmup curve");
}

template <class V>
void describe(V& v, OneCycleParams& s) {
  v.field("cycle_min_lr", s.cycle_min_lr, "lower lr of the cycle", check().ge(0).required());
  v.field("cycle_max_lr", s.cycle_max_lr, "upper lr of the cycle", check().ge(0).required());
  v.field("decay_lr_rate", s.decay_lr_rate, "lr decay rate after the cycle", check().ge(0));
  v.field("cycle_first_step_size", s.cycle_first_step_size, "steps of the rising half", check().gt(0));
  v.field("cycle_second_step_size", s.cycle_second_step_size, "steps of the falling half; null = cycle_first_step_size",
          check().gt(0));
  v.field("cycle_first_stair_count", s.cycle_first_stair_count, "accepted, unused (as in DeepSpeed)", check().ge(0));
  v.field("cycle_second_stair_count", s.cycle_second_stair_count, "accepted, unused (as in DeepSpeed)", check().ge(0));
  v.field("decay_step_size", s.decay_step_size, "steps per decay interval after the cycle; 0 = no decay", check().ge(0));
  v.field("cycle_momentum", s.cycle_momentum, "cycle beta1 between cycle_max_mom and cycle_min_mom");
  v.field("cycle_min_mom", s.cycle_min_mom, "lower beta1", check().ge(0).lt(1));
  v.field("cycle_max_mom", s.cycle_max_mom, "upper beta1", check().ge(0).lt(1));
  v.field("decay_mom_rate", s.decay_mom_rate, "momentum decay rate after the cycle", check().ge(0));
}

template <class V>
void describe(V& v, LRRangeTestParams& s) {
  v.field("lr_range_test_min_lr", s.lr_range_test_min_lr, "starting lr", check().gt(0));
  v.field("lr_range_test_step_size", s.lr_range_test_step_size, "steps per lr increase", check().gt(0));
  v.field("lr_range_test_step_rate", s.lr_range_test_step_rate, "lr increase per interval", check().gt(0));
  v.field("lr_range_test_staircase", s.lr_range_test_staircase, "increase in steps rather than continuously");
}
}  // namespace schema

template <class V>
void describe(V& v, SchedulerConfig& s) {
  v.field("type", s.type, "schedule name (case-sensitive, as DeepSpeed)", check().required());
  v.variant("params", s.type, SchedulerType::WarmupLR, s.warmup_lr, "WarmupLR parameters");
  v.variant("params", s.type, SchedulerType::WarmupDecayLR, s.warmup_decay_lr, "WarmupDecayLR parameters");
  v.variant("params", s.type, SchedulerType::WarmupCosineLR, s.warmup_cosine_lr, "WarmupCosineLR parameters");
  v.variant("params", s.type, SchedulerType::OneCycle, s.one_cycle, "OneCycle parameters");
  v.variant("params", s.type, SchedulerType::LRRangeTest, s.lr_range_test, "LRRangeTest parameters");
}

template <class V>
void describe(V& v, FP16Config& s) {
  v.field("enabled", s.enabled, "fp16 mixed precision (the CPU backend computes in fp32)");
  v.field("auto_cast", s.auto_cast, "cast inputs to fp16");
  v.field("loss_scale", s.loss_scale, "static loss scale; 0 = dynamic", check().ge(0));
  v.field("initial_scale_power", s.initial_scale_power, "dynamic scaling starts at 2^this", check().ge(0).le(64));
  v.field("loss_scale_window", s.loss_scale_window, "good steps before the scale doubles", check().gt(0));
  v.field("hysteresis", s.hysteresis, "overflows tolerated before the scale halves", check().ge(1));
  v.field("consecutive_hysteresis", s.consecutive_hysteresis, "refill hysteresis on every good step");
  v.field("min_loss_scale", s.min_loss_scale, "floor of the dynamic scale", check().gt(0));
  v.field("fp16_master_weights_and_grads", s.fp16_master_weights_and_grads, "keep master weights in fp16");
}

template <class V>
void describe(V& v, BF16Config& s) {
  v.field("enabled", s.enabled, "bf16 mixed precision (the CPU backend computes in fp32)");
  v.field("immediate_grad_update", s.immediate_grad_update, "apply gradients as soon as they are ready");
}

template <class V>
void describe(V& v, DataTypesConfig& s) {
  v.field("grad_accum_dtype", s.grad_accum_dtype, "gradient accumulation type; null = by precision");
}

template <class V>
void describe(V& v, OffloadOptimizerConfig& s) {
  v.field("device", s.device, "only \"none\" is supported");
  v.field("nvme_path", s.nvme_path, "NVMe offload directory");
  v.field("pin_memory", s.pin_memory, "pinned host memory");
  v.field("buffer_count", s.buffer_count, "offload buffers", check().gt(0));
  v.field("ratio", s.ratio, "fraction of optimizer work offloaded", check().ge(0).le(1));
  v.field("fast_init", s.fast_init, "fast NVMe init");
}

template <class V>
void describe(V& v, OffloadParamConfig& s) {
  v.field("device", s.device, "only \"none\" is supported");
  v.field("nvme_path", s.nvme_path, "NVMe offload directory");
  v.field("pin_memory", s.pin_memory, "pinned host memory");
  v.field("buffer_count", s.buffer_count, "offload buffers", check().gt(0));
  v.field("buffer_size", s.buffer_size, "elements per buffer", check().gt(0).sized());
  v.field("max_in_cpu", s.max_in_cpu, "elements kept in host memory", check().ge(0).sized());
}

static const char* kStage3Problem = "applies to ZeRO stage 3, which is not supported yet";
static const char* kStage3Hint = "remove it; ZeRO stages 0, 1 and 2 are supported";

template <class V>
void describe(V& v, ZeroConfig& s) {
  v.field("stage", s.stage, "0 = off, 1 = optimizer state sharding, 2 = + gradient sharding (3: not yet)",
          check().ge(0).le(3));
  v.field("contiguous_gradients", s.contiguous_gradients, "copy gradients into one contiguous buffer");
  v.field("reduce_scatter", s.reduce_scatter, "reduce-scatter (true) or all-reduce (false) gradients");
  v.field("reduce_bucket_size", s.reduce_bucket_size, "elements per gradient reduction bucket; \"auto\" = hidden_size^2",
          check().gt(0).sized().allow_auto());
  v.field("use_multi_rank_bucket_allreduce", s.use_multi_rank_bucket_allreduce, "all-reduce buckets then keep the owned slice");
  v.field("allgather_partitions", s.allgather_partitions, "all-gather (true) or broadcast (false) updated partitions");
  v.field("allgather_bucket_size", s.allgather_bucket_size, "elements per parameter all-gather bucket; \"auto\" = hidden_size^2",
          check().gt(0).sized().allow_auto());
  v.field("overlap_comm", s.overlap_comm, "overlap gradient reduction with the backward pass");
  v.field("load_from_fp32_weights", s.load_from_fp32_weights, "restore fp32 master weights from the checkpoint's fp32 copy");
  v.field("round_robin_gradients", s.round_robin_gradients, "stage 1/2: round-robin gradient partition copies");
  v.field("sub_group_size", s.sub_group_size, "elements per optimizer step group", check().gt(0).sized());
  v.field("elastic_checkpoint", s.elastic_checkpoint, "accepted, recorded");
  v.field("ignore_unused_parameters", s.ignore_unused_parameters, "accepted, recorded");
  v.section("offload_optimizer", s.offload_optimizer, "optimizer offload (only device \"none\")");
  v.section("offload_param", s.offload_param, "parameter offload (only device \"none\")");
  v.refuse("cpu_offload", "\"cpu_offload\" is deprecated (DeepSpeed remaps it with a warning)",
           "write \"offload_optimizer\": {\"device\": \"cpu\"} instead; offload is not supported yet, so "
           "leave both out to train without it");
  v.refuse("cpu_offload_param", "\"cpu_offload_param\" is deprecated (DeepSpeed remaps it with a warning)",
           "write \"offload_param\": {\"device\": \"cpu\"} instead; offload is not supported yet, so "
           "leave both out to train without it");
  v.refuse("cpu_offload_use_pin_memory", "\"cpu_offload_use_pin_memory\" is deprecated (DeepSpeed remaps it with a warning)",
           "write \"offload_optimizer\": {\"pin_memory\": true} instead");
  v.refuse("stage3_prefetch_bucket_size", kStage3Problem, kStage3Hint);
  v.refuse("stage3_param_persistence_threshold", kStage3Problem, kStage3Hint);
  v.refuse("stage3_model_persistence_threshold", kStage3Problem, kStage3Hint);
  v.refuse("stage3_max_live_parameters", kStage3Problem, kStage3Hint);
  v.refuse("stage3_max_reuse_distance", kStage3Problem, kStage3Hint);
  v.refuse("stage3_gather_16bit_weights_on_model_save", kStage3Problem, kStage3Hint);
  v.refuse("stage3_gather_fp16_weights_on_model_save", kStage3Problem, kStage3Hint);
  v.refuse("stage3_module_granularity_threshold", kStage3Problem, kStage3Hint);
  v.refuse("stage3_use_all_reduce_for_fetch_params", kStage3Problem, kStage3Hint);
}

template <class V>
void describe(V& v, PipelineConfig& s) {
  v.field("stages", s.stages, "pipeline stages; \"auto\" = --pipe_parallel_size (an integer must agree with it)",
          check().gt(0).allow_auto());
  v.field("partition", s.partition, "DeepSpeed parses and ignores it; only \"best\" (use partition_method)");
  v.field("seed_layers", s.seed_layers, "accepted, recorded");
  v.field("activation_checkpoint_interval", s.activation_checkpoint_interval,
          "checkpoint every this many layers; 0 = off", check().ge(0));
  v.field("pipe_partitioned", s.pipe_partitioned, "tensor-parallel activation partitioning (no effect without TP)");
  v.field("grad_partitioned", s.grad_partitioned, "tensor-parallel gradient partitioning (no effect without TP)");
  v.field("use_reentrant", s.use_reentrant, "activation checkpointing variant");
  v.field("partition_method", s.partition_method,
          "how layers are split into stages: \"parameters\", \"uniform\" or \"type:REGEX\"");
  v.field("schedule", s.schedule, "pipeline schedule");
}

template <class V>
void describe(V& v, ActivationCheckpointingConfig& s) {
  v.field("partition_activations", s.partition_activations, "split checkpointed activations over tensor-parallel ranks");
  v.field("contiguous_memory_optimization", s.contiguous_memory_optimization, "copy checkpoints into one buffer");
  v.field("cpu_checkpointing", s.cpu_checkpointing, "keep checkpointed activations in host memory");
  v.field("number_checkpoints", s.number_checkpoints, "checkpoints per forward (for the contiguous buffer)",
          check().gt(0));
  v.field("synchronize_checkpoint_boundary", s.synchronize_checkpoint_boundary, "synchronise at checkpoint boundaries");
  v.field("profile", s.profile, "time the checkpointed forward passes");
}

template <class V>
void describe(V& v, MonitorConfig& s) {
  v.field("enabled", s.enabled, "write this monitor's events");
  v.field("output_path", s.output_path, "directory for the events (\"\" = the output dir)");
  v.field("job_name", s.job_name, "sub-directory / run name");
}

template <class V>
void describe(V& v, WandbConfig& s) {
  v.field("enabled", s.enabled, "log to Weights & Biases");
  v.field("group", s.group, "run group");
  v.field("team", s.team, "team (entity)");
  v.field("project", s.project, "project");
}

template <class V>
void describe(V& v, FlopsProfilerConfig& s) {
  v.field("enabled", s.enabled, "profile FLOPs at profile_step");
  v.field("recompute_fwd_factor", s.recompute_fwd_factor, "extra forward FLOPs from recomputation", check().ge(0));
  v.field("profile_step", s.profile_step, "step to profile", check().ge(1));
  v.field("module_depth", s.module_depth, "module depth to print; -1 = all", check().ge(-1));
  v.field("top_modules", s.top_modules, "modules to list", check().ge(1));
  v.field("detailed", s.detailed, "per-module detail");
  v.field("output_file", s.output_file, "file for the profile; null = the log");
}

template <class V>
void describe(V& v, CheckpointParallelWriteConfig& s) {
  v.field("pipeline_stage", s.pipeline_stage, "each pipeline stage writes its own files");
}

template <class V>
void describe(V& v, CheckpointConfig& s) {
  v.field("tag_validation", s.tag_validation, "check that all ranks save the same tag (case-insensitive)");
  v.field("load_universal", s.load_universal, "load a universal checkpoint");
  v.field("use_node_local_storage", s.use_node_local_storage, "each node writes to its own storage");
  v.section("parallel_write", s.parallel_write, "parallel checkpoint writing");
}

template <class V>
void describe(V& v, CommsLoggerConfig& s) {
  v.field("enabled", s.enabled, "log collective calls");
  v.field("verbose", s.verbose, "log every call");
  v.field("prof_all", s.prof_all, "profile all collectives");
  v.field("debug", s.debug, "include caller names");
  v.field("prof_ops", s.prof_ops, "collectives to profile when prof_all is false");
}

static SectionOpts<OptimizerConfig> optimizer_opts() {
  SectionOpts<OptimizerConfig> o;
  o.required = true;
  o.example = "add \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 1e-4}}";
  return o;
}
static SectionOpts<SchedulerConfig> scheduler_opts() {
  SectionOpts<SchedulerConfig> o;
  o.present = [](const SchedulerConfig& s) { return s.type != SchedulerType::None; };
  return o;
}
static SectionOpts<ZeroConfig> zero_opts() {
  SectionOpts<ZeroConfig> o;
  o.from_bool = [](ZeroConfig& z, bool on) { z.stage = on ? 1 : 0; };
  return o;
}

template <class V>
void describe(V& v, DsConfig& s) {
  v.field("train_batch_size", s.batch_spec.train_batch_size,
          "samples per optimizer step over all data-parallel ranks (= micro x gas x dp); \"auto\"/null = inferred",
          check().gt(0).allow_auto());
  v.field("train_micro_batch_size_per_gpu", s.batch_spec.train_micro_batch_size_per_gpu,
          "samples per forward/backward on one rank; \"auto\"/null = inferred", check().gt(0).allow_auto());
  v.field("gradient_accumulation_steps", s.batch_spec.gradient_accumulation_steps,
          "micro-batches per optimizer step; \"auto\"/null = inferred", check().gt(0).allow_auto());
  v.section("optimizer", s.optimizer, "the optimizer (required)",
            optimizer_opts());
  v.section("scheduler", s.scheduler, "the learning-rate schedule; absent = constant lr",
            scheduler_opts());
  v.field("gradient_clipping", s.gradient_clipping, "clip the global gradient L2 norm to this; 0 = off",
          check().ge(0));
  v.field("steps_per_print", s.steps_per_print,
          "recorded; fmtrain logs every --log_steps steps (FMEngine's flag)", check().ge(0));
  v.field("wall_clock_breakdown", s.wall_clock_breakdown, "recorded; per-phase timings are not implemented");
  v.field("prescale_gradients", s.prescale_gradients, "divide gradients before the all-reduce");
  v.field("gradient_predivide_factor", s.gradient_predivide_factor, "pre-divide factor with prescale_gradients",
          check().gt(0));
  v.field("dump_state", s.dump_state, "print the engine state after setup");
  v.field("zero_allow_untested_optimizer", s.zero_allow_untested_optimizer,
          "accepted for compatibility; no effect (Adam/AdamW are the only optimizers)");
  v.section("fp16", s.fp16, "fp16 mixed precision and loss scaling");
  v.section("bf16", s.bf16, "bf16 mixed precision");
  v.section("data_types", s.data_types, "data types of internal buffers");
  v.field("communication_data_type", s.communication_data_type, "gradient communication type; null = by precision");
  v.section("zero_optimization", s.zero_optimization, "ZeRO; true = stage 1, false = stage 0 (as DeepSpeed)",
            zero_opts());
  v.section("pipeline", s.pipeline, "pipeline parallelism");
  v.section("activation_checkpointing", s.activation_checkpointing, "activation checkpointing (recorded)");
  v.section("tensorboard", s.tensorboard, "TensorBoard event files");
  v.section("csv_monitor", s.csv_monitor, "CSV monitor files");
  v.section("wandb", s.wandb, "Weights & Biases");
  v.section("flops_profiler", s.flops_profiler, "FLOPs profiler");
  v.section("checkpoint", s.checkpoint, "checkpoint options");
  v.section("comms_logger", s.comms_logger, "collective-call logging");
  v.refuse("bfloat16", "\"bfloat16\" is DeepSpeed's alias of \"bf16\"; only \"bf16\" is accepted",
           "write \"bf16\": {\"enabled\": true}");
  v.refuse("seed", "\"seed\" is not a DeepSpeed config key", "use the --seed flag");
  v.refuse("lr-decay-style", "unknown key \"lr-decay-style\" (DeepSpeed ignores it silently)",
           "the lr schedule is the \"scheduler\" section, e.g. \"scheduler\": {\"type\": \"WarmupCosineLR\", "
           "\"params\": {\"total_num_steps\": \"auto\", \"warmup_num_steps\": 100}}");
  v.refuse("warmup", "unknown key \"warmup\" (DeepSpeed ignores it silently)",
           "write the warmup as scheduler.params.warmup_num_steps");
  v.refuse("min_lr", "unknown key \"min_lr\" (DeepSpeed ignores it silently)",
           "write scheduler.params.warmup_min_lr (WarmupLR/WarmupDecayLR) or cos_min_ratio (WarmupCosineLR)");
  v.refuse("precision", "unknown key \"precision\" (DeepSpeed ignores it silently)",
           "write \"bf16\": {\"enabled\": true} or \"fp16\": {\"enabled\": true}; without either the run is fp32");
}

// ---- validation beyond single keys -----------------------------------------------------------------
namespace {

const JsonNode* lookup(const JsonNode& root, std::initializer_list<std::string_view> keys) {
  const JsonNode* n = &root;
  for (std::string_view k : keys) {
    if (!n->is_object()) return nullptr;
    n = n->find(k);
    if (!n) return nullptr;
  }
  return n;
}

[[noreturn]] void fail_at(const JsonDocument& doc, const std::string& path, const JsonNode* node,
                          const std::string& what, const std::string& hint) {
  std::string w = what;
  if (node) w += " (at " + doc.location(node->offset) + ")";
  throw InputError(path, w, hint);
}

void validate(DsConfig& c, const JsonDocument& doc) {
  const JsonNode& root = doc.root;

  if (c.fp16.enabled && c.bf16.enabled)
    fail_at(doc, "bf16.enabled", lookup(root, {"bf16", "enabled"}), "fp16 and bf16 cannot both be enabled",
            "set one of fp16.enabled / bf16.enabled to false");

  const ZeroConfig& z = c.zero_optimization;
  if (z.stage == 3)
    fail_at(doc, "zero_optimization.stage", lookup(root, {"zero_optimization", "stage"}),
            "ZeRO stage 3 is not supported yet", "use stage 0, 1 or 2");
  if (z.offload_optimizer.device != OffloadDevice::None)
    fail_at(doc, "zero_optimization.offload_optimizer.device",
            lookup(root, {"zero_optimization", "offload_optimizer", "device"}),
            std::string("optimizer offload to \"") + to_string(z.offload_optimizer.device) + "\" is not supported yet",
            "remove offload_optimizer (or set its device to \"none\")");
  if (z.offload_param.device != OffloadDevice::None)
    fail_at(doc, "zero_optimization.offload_param.device",
            lookup(root, {"zero_optimization", "offload_param", "device"}),
            std::string("parameter offload to \"") + to_string(z.offload_param.device) + "\" is not supported yet",
            "remove offload_param (or set its device to \"none\"); DeepSpeed allows it only with stage 3");

  PipelineConfig& p = c.pipeline;
  if (p.partition != "best") {
    std::string as_method = p.partition;
    fail_at(doc, "pipeline.partition", lookup(root, {"pipeline", "partition"}),
            "DeepSpeed parses pipeline.partition but never uses it; only \"best\" is accepted",
            "to choose the layer split write \"partition_method\": \"" + as_method + "\" in the pipeline section");
  }
  {
    const JsonNode* node = lookup(root, {"pipeline", "partition_method"});
    std::string m = p.partition_method;
    std::string lower = m;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (lower == "parameters" || lower == "uniform") {
      p.partition_method = lower;
    } else if (lower.rfind("type:", 0) == 0) {
      std::string re = m.substr(5);
      if (re.find(':') != std::string::npos)
        fail_at(doc, "pipeline.partition_method", node,
                "a second ':' in \"" + m + "\": only the text between the first and the second ':' is the "
                "pattern (as in DeepSpeed), the rest would be ignored",
                "remove the second ':' (write (?: groups without the colon, e.g. as plain groups)");
      if (re.empty())
        fail_at(doc, "pipeline.partition_method", node, "\"type:\" needs a regular expression after the colon",
                "e.g. \"type:DecoderLayer\"");
      try {
        std::regex compiled(re, std::regex::ECMAScript | std::regex::icase);
      } catch (const std::regex_error& e) {
        fail_at(doc, "pipeline.partition_method", node,
                "invalid regular expression \"" + re + "\": " + e.what(), "e.g. \"type:DecoderLayer\"");
      }
      p.partition_method = "type:" + re;
    } else {
      std::string near = nearest_word(lower, {"parameters", "uniform"});
      fail_at(doc, "pipeline.partition_method", node, "unknown partition method \"" + m + "\"",
              near.empty() ? "valid: \"parameters\", \"uniform\", \"type:REGEX\" (\"profile\" is not implemented)"
                           : "did you mean \"" + near + "\"?");
    }
  }

  // DeepSpeed >= 0.17: WarmupLR without warmup_max_lr warms up to the optimizer's lr.
  if (c.scheduler.type == SchedulerType::WarmupLR && !lookup(root, {"scheduler", "params", "warmup_max_lr"}))
    c.scheduler.warmup_lr.warmup_max_lr = c.optimizer.params.lr;
}

template <class... Parts>
std::string cat(Parts&&... parts) {
  std::string s;
  (s += ... += parts);
  return s;
}

bool mul_overflows(int64_t a, int64_t b, int64_t& out) { return __builtin_mul_overflow(a, b, &out); }

}  // namespace

// ---- loading ---------------------------------------------------------------------------------------
DsConfig parse_ds_config(const std::string& text, const std::string& source) {
  JsonDocument doc = parse_json(text, source);
  DsConfig cfg;
  cfg.source = source;
  if (!doc.root.is_object())
    throw InputError(doc.location(doc.root.offset),
                     "expected a JSON object at the top level, got " + describe_json_value(doc.root),
                     "a DeepSpeed config is an object like {\"train_micro_batch_size_per_gpu\": 8, ...}");
  schema::ReadState st{doc, cfg.auto_keys};
  schema::read_section(st, doc.root, "", cfg);
  validate(cfg, doc);
  return cfg;
}

DsConfig load_ds_config(const std::string& path) {
  JsonDocument doc = read_json_file(path);
  return parse_ds_config(doc.text, path);
}

std::string_view default_ds_config_json() {
  static constexpr std::string_view kText = R"({
  // fmtrain's built-in config (without --deepspeed_config): fp32, AdamW, linear warmup then cosine
  // decay over --train_steps. Sized for the tiny model; configs/ds/tiny.json holds the same.
  "train_micro_batch_size_per_gpu": 8,
  "gradient_accumulation_steps": 1,
  "optimizer": {
    "type": "AdamW",
    "params": {"lr": 1e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1}
  },
  "scheduler": {
    "type": "WarmupCosineLR",
    "params": {
      "total_num_steps": "auto",
      "warmup_num_steps": 10,
      "warmup_type": "linear",
      "warmup_min_ratio": 0.0,
      "cos_min_ratio": 0.1
    }
  },
  "gradient_clipping": 1.0,
  "steps_per_print": 10,
  "zero_optimization": {"stage": 0}
}
)";
  return kText;
}

DsConfig default_ds_config() { return parse_ds_config(std::string(default_ds_config_json()), "<default ds config>"); }

// ---- resolution ------------------------------------------------------------------------------------
BatchSizes resolve_batch(const BatchSpec& spec, int dp_size, std::vector<std::string>* notes) {
  FM_CHECK(dp_size > 0, "data-parallel size must be positive");
  const int64_t dp = dp_size;
  const auto& tb = spec.train_batch_size;
  const auto& mb = spec.train_micro_batch_size_per_gpu;
  const auto& gas = spec.gradient_accumulation_steps;
  const std::string dps = std::to_string(dp);
  auto note = [&](const std::string& line) {
    if (notes) notes->push_back(line);
  };
  auto product = [&](int64_t a, int64_t b, const std::string& what) {
    int64_t r;
    if (mul_overflows(a, b, r)) throw InputError("train_batch_size", what + " overflows a 64-bit integer");
    return r;
  };

  BatchSizes out;
  out.dp_size = dp_size;
  if (!tb && !mb) {
    throw InputError("train_batch_size",
                     "neither train_batch_size nor train_micro_batch_size_per_gpu is given (\"auto\" counts as "
                     "not given): there is nothing to infer the batch sizes from",
                     "write e.g. \"train_micro_batch_size_per_gpu\": 8 (train_batch_size is then inferred)");
  }
  if (tb && mb && gas) {
    int64_t want = product(product(*mb, *gas, "the batch size"), dp, "the batch size");
    if (want != *tb)
      throw InputError("train_batch_size",
                       fmt::format("train_batch_size {} != train_micro_batch_size_per_gpu {} x "
                                   "gradient_accumulation_steps {} x data-parallel size {} = {}",
                                   *tb, *mb, *gas, dp, want),
                       "make train_batch_size = micro x gas x dp, or leave one of the three out to have it inferred");
    out.train_batch_size = *tb;
    out.train_micro_batch_size_per_gpu = *mb;
    out.gradient_accumulation_steps = *gas;
  } else if (tb && mb) {
    int64_t per_step = product(*mb, dp, "the batch size");
    if (*tb % per_step != 0)
      throw InputError("train_batch_size",
                       fmt::format("train_batch_size {} is not divisible by train_micro_batch_size_per_gpu ({}) x "
                                   "data-parallel size ({}) = {}",
                                   *tb, *mb, dp, per_step),
                       "choose train_batch_size as a multiple of micro x dp, or give gradient_accumulation_steps "
                       "instead of one of them");
    out.train_batch_size = *tb;
    out.train_micro_batch_size_per_gpu = *mb;
    out.gradient_accumulation_steps = *tb / per_step;
    note(fmt::format("gradient_accumulation_steps -> {} (= train_batch_size {} / (train_micro_batch_size_per_gpu {} "
                     "x data-parallel size {}))",
                     out.gradient_accumulation_steps, *tb, *mb, dp));
  } else if (tb && gas) {
    int64_t per_micro = product(*gas, dp, "the batch size");
    if (*tb % per_micro != 0)
      throw InputError("train_batch_size",
                       fmt::format("train_batch_size {} is not divisible by gradient_accumulation_steps ({}) x "
                                   "data-parallel size ({}) = {}",
                                   *tb, *gas, dp, per_micro),
                       "choose train_batch_size as a multiple of gas x dp, or give train_micro_batch_size_per_gpu "
                       "instead of one of them");
    out.train_batch_size = *tb;
    out.gradient_accumulation_steps = *gas;
    out.train_micro_batch_size_per_gpu = *tb / per_micro;
    note(fmt::format("train_micro_batch_size_per_gpu -> {} (= train_batch_size {} / (gradient_accumulation_steps {} "
                     "x data-parallel size {}))",
                     out.train_micro_batch_size_per_gpu, *tb, *gas, dp));
  } else if (mb && gas) {
    out.train_micro_batch_size_per_gpu = *mb;
    out.gradient_accumulation_steps = *gas;
    out.train_batch_size = product(product(*mb, *gas, "the batch size"), dp, "the batch size");
    note(fmt::format("train_batch_size -> {} (= train_micro_batch_size_per_gpu {} x gradient_accumulation_steps {} "
                     "x data-parallel size {})",
                     out.train_batch_size, *mb, *gas, dp));
  } else if (tb) {
    if (*tb % dp != 0)
      throw InputError("train_batch_size",
                       fmt::format("train_batch_size {} is not divisible by the data-parallel size ({})", *tb, dp),
                       "choose a multiple of the data-parallel size, or give train_micro_batch_size_per_gpu instead");
    out.train_batch_size = *tb;
    out.gradient_accumulation_steps = 1;
    out.train_micro_batch_size_per_gpu = *tb / dp;
    note("gradient_accumulation_steps -> 1 (only train_batch_size is given)");
    note(fmt::format("train_micro_batch_size_per_gpu -> {} (= train_batch_size {} / data-parallel size {})",
                     out.train_micro_batch_size_per_gpu, *tb, dp));
  } else {  // mb only
    out.train_micro_batch_size_per_gpu = *mb;
    out.gradient_accumulation_steps = 1;
    out.train_batch_size = product(*mb, dp, "the batch size");
    note("gradient_accumulation_steps -> 1 (only train_micro_batch_size_per_gpu is given)");
    note(fmt::format("train_batch_size -> {} (= train_micro_batch_size_per_gpu {} x data-parallel size {})",
                     out.train_batch_size, *mb, dp));
  }
  return out;
}

std::vector<std::string> resolve_ds_config(DsConfig& c, const ResolveContext& ctx) {
  std::vector<std::string> log;
  auto is_auto = [&](std::string_view path) {
    for (const std::string& a : c.auto_keys)
      if (a == path) return true;
    return false;
  };

  // Batch triad: "auto" means "not given".
  std::vector<std::string> notes;
  c.batch = resolve_batch(c.batch_spec, ctx.dp_size, &notes);
  for (const std::string& n : notes) {
    std::string key = n.substr(0, n.find(' '));
    std::string rest = n.substr(key.size());
    log.push_back("config: " + key + (is_auto(key) ? " \"auto\"" : " (not given)") + rest);
  }

  for (const std::string& path : c.auto_keys) {
    if (path == "train_batch_size" || path == "train_micro_batch_size_per_gpu" ||
        path == "gradient_accumulation_steps")
      continue;
    std::string value, why;
    if (path == "scheduler.params.total_num_steps") {
      if (ctx.train_steps <= 0)
        throw InputError(path, "\"auto\" takes the value of --train_steps, which is not set",
                         "pass --train_steps N or write a number");
      int64_t* target = c.scheduler.type == SchedulerType::WarmupDecayLR ? &c.scheduler.warmup_decay_lr.total_num_steps
                                                                         : &c.scheduler.warmup_cosine_lr.total_num_steps;
      FM_CHECK(c.scheduler.type == SchedulerType::WarmupDecayLR || c.scheduler.type == SchedulerType::WarmupCosineLR);
      *target = ctx.train_steps;
      value = std::to_string(ctx.train_steps);
      why = "from --train_steps";
    } else if (path == "scheduler.params.warmup_max_lr" || path == "scheduler.params.warmup_min_lr") {
      bool is_max = path.ends_with("max_lr");
      double v = is_max ? c.optimizer.params.lr : 0.0;
      bool decay = c.scheduler.type == SchedulerType::WarmupDecayLR;
      FM_CHECK(decay || c.scheduler.type == SchedulerType::WarmupLR);
      double& target = is_max ? (decay ? c.scheduler.warmup_decay_lr.warmup_max_lr : c.scheduler.warmup_lr.warmup_max_lr)
                              : (decay ? c.scheduler.warmup_decay_lr.warmup_min_lr : c.scheduler.warmup_lr.warmup_min_lr);
      target = v;
      value = schema::value_text(v);
      why = is_max ? "= optimizer.params.lr" : "warmup starts at 0";
    } else if (path == "zero_optimization.reduce_bucket_size" || path == "zero_optimization.allgather_bucket_size") {
      if (ctx.hidden_size <= 0)
        throw InputError(path, "\"auto\" is hidden_size^2, and the model's hidden_size is not known here",
                         "write a number of elements, e.g. 500000000");
      int64_t sq;
      if (mul_overflows(ctx.hidden_size, ctx.hidden_size, sq)) throw InputError(path, "hidden_size^2 overflows");
      (path.ends_with("reduce_bucket_size") ? c.zero_optimization.reduce_bucket_size
                                            : c.zero_optimization.allgather_bucket_size) = sq;
      value = std::to_string(sq);
      why = cat("= hidden_size^2, hidden_size ", std::to_string(ctx.hidden_size));
    } else if (path == "pipeline.stages") {
      continue;  // below
    } else {
      FM_CHECK(false, "an accepted \"auto\" without a resolution rule: " + path);
    }
    log.push_back(cat("config: ", path, " \"auto\" -> ", value, " (", why, ")"));
  }

  if (ctx.pipe_parallel_size > 0) {
    if (!c.pipeline.stages) {
      c.pipeline.stages = ctx.pipe_parallel_size;
      if (is_auto("pipeline.stages"))
        log.push_back(fmt::format("config: pipeline.stages \"auto\" -> {} (from --pipe_parallel_size)",
                                  ctx.pipe_parallel_size));
    } else if (*c.pipeline.stages != ctx.pipe_parallel_size) {
      throw InputError("pipeline.stages",
                       fmt::format("pipeline.stages {} disagrees with --pipe_parallel_size {}", *c.pipeline.stages,
                                   ctx.pipe_parallel_size),
                       "remove pipeline.stages (or write \"auto\") or make the two agree");
    }
  }
  c.resolved = true;
  return log;
}

// ---- output ----------------------------------------------------------------------------------------
std::string ds_config_to_json(const DsConfig& cfg) {
  DsConfig c = cfg;
  if (c.resolved) {
    c.batch_spec.train_batch_size = c.batch.train_batch_size;
    c.batch_spec.train_micro_batch_size_per_gpu = c.batch.train_micro_batch_size_per_gpu;
    c.batch_spec.gradient_accumulation_steps = c.batch.gradient_accumulation_steps;
  }
  rapidjson::StringBuffer buf;
  schema::JsonWriter w(buf);
  w.SetIndent(' ', 2);
  w.SetFormatOptions(rapidjson::kFormatSingleLineArray);
  w.StartObject();
  schema::Writer writer(w, "", c.resolved ? nullptr : &c.auto_keys);
  describe(writer, c);
  w.EndObject();
  return std::string(buf.GetString()) + "\n";
}

std::string ds_config_reference_markdown() {
  DsConfig defaults;
  std::vector<schema::DocRow> rows;
  schema::Documenter doc(rows, "");
  describe(doc, defaults);

  // One table for the top-level scalars, then one per top-level section.
  std::vector<std::string> sections;
  for (const auto& r : rows)
    if (r.path.find('.') == std::string::npos && (r.type == "object" || r.type == "object or bool"))
      sections.push_back(r.path);
  auto section_of = [&](const std::string& path) -> std::string {
    std::string top = path.substr(0, path.find('.'));
    for (const std::string& s : sections)
      if (s == top) return s;
    return "";
  };
  auto table = [&](const std::string& title, const std::string& section) {
    std::string out = "#### " + title + "\n\n| key | type | default | constraint | meaning |\n|---|---|---|---|---|\n";
    for (const auto& r : rows) {
      if (section_of(r.path) != section) continue;
      out += "| `" + r.path + "` | " + r.type + " | `" + r.default_value + "` | " + r.constraint + " | " + r.doc + " |\n";
    }
    return out + "\n";
  };
  std::string out = table("Top level", "");
  for (const std::string& s : sections) out += table("`" + s + "`", s);
  return out;
}

}  // namespace fm::runtime
