// The DeepSpeed-style JSON training config, read strictly into plain structs.
//
// Semantics follow DeepSpeed's JSON config (key names, defaults, "adam means AdamW", the batch
// triad), but the reading is stricter: every key at every level is known or an InputError naming
// its JSON path and the nearest valid key; types are never coerced ("false" is not false, 32.0 is
// not a batch size); duplicate keys and invalid JSON are errors with file:line:column; "auto" is
// resolved explicitly (with a log line) or refused with what to write; batch sizes must divide
// exactly. docs/config.md is the user-facing reference; its key tables are generated from the
// schema in ds_config.cpp (ds_config_reference_markdown) and checked by a test.
//
// Use: load_ds_config(path) (or default_ds_config()) parses and validates everything that does
// not depend on the run; resolve_ds_config(cfg, ctx) then resolves "auto" values and the batch
// triad for a data-parallel size, and may be called again when the size changes. Read the
// sections only after resolve_ds_config (`resolved` is true). The CPU backend computes in fp32
// whatever fp16/bf16 say; those sections are recorded, not acted on, here.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "zero/lr_schedule.h"

namespace fm::runtime {

// ---- batch ---------------------------------------------------------------------------------------
// The three batch keys as written; nullopt = not given (or "auto", which means the same).
struct BatchSpec {
  std::optional<int64_t> train_batch_size;                // tb
  std::optional<int64_t> train_micro_batch_size_per_gpu;  // mb
  std::optional<int64_t> gradient_accumulation_steps;     // gas
};

// The triad resolved for one data-parallel size: train_batch_size = micro x gas x dp exactly.
struct BatchSizes {
  int64_t train_batch_size = 0;
  int64_t train_micro_batch_size_per_gpu = 0;
  int64_t gradient_accumulation_steps = 0;
  int dp_size = 0;  // 0 = not resolved
};

// ---- optimizer -----------------------------------------------------------------------------------
enum class OptimizerType { Adam, AdamW };

// Defaults are DeepSpeed's FusedAdam/DeepSpeedCPUAdam defaults (what DeepSpeed builds for "Adam"
// and "AdamW" unless torch_adam is set): weight_decay 0 for both types.
struct AdamParams {
  double lr = 1e-3;
  std::array<double, 2> betas{0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool adam_w_mode = true;       // type Adam only: true = decoupled weight decay (AdamW)
  bool bias_correction = true;
  bool torch_adam = false;       // accepted for compatibility; selects nothing here
};

struct OptimizerConfig {
  OptimizerType type = OptimizerType::AdamW;
  AdamParams params;
  // DeepSpeed: "AdamW" is always decoupled; "Adam" is decoupled unless adam_w_mode is false.
  bool decoupled_weight_decay() const { return type == OptimizerType::AdamW || params.adam_w_mode; }
};

// ---- scheduler (the math lives in zero/) -----------------------------------------------------------
enum class SchedulerType { None, WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest };
// The parameter structs are the LR schedules' own (zero/lr_schedule.h): same names and defaults
// as DeepSpeed's keys, so the config fills what the schedule reads.
using WarmupType = zero::WarmupType;
using WarmupLRParams = zero::WarmupLRParams;          // warmup_max_lr not written: optimizer.params.lr
using WarmupDecayLRParams = zero::WarmupDecayLRParams;  // total_num_steps required
using WarmupCosineLRParams = zero::WarmupCosineLRParams;  // scales optimizer.params.lr; total_num_steps required
using OneCycleParams = zero::OneCycleParams;          // cycle_min_lr and cycle_max_lr required
using LRRangeTestParams = zero::LRRangeTestParams;

// Only the member matching `type` is meaningful. None = no scheduler: the lr stays at
// optimizer.params.lr.
struct SchedulerConfig {
  SchedulerType type = SchedulerType::None;
  WarmupLRParams warmup_lr;
  WarmupDecayLRParams warmup_decay_lr;
  WarmupCosineLRParams warmup_cosine_lr;
  OneCycleParams one_cycle;
  LRRangeTestParams lr_range_test;
};

// ---- precision ---------------------------------------------------------------------------------
enum class DataType { FP32, FP16, BF16 };

struct FP16Config {
  bool enabled = false;
  bool auto_cast = false;
  double loss_scale = 0.0;  // 0 = dynamic loss scaling
  int64_t initial_scale_power = 16;
  int64_t loss_scale_window = 1000;
  int64_t hysteresis = 2;
  bool consecutive_hysteresis = false;
  double min_loss_scale = 1.0;
  bool fp16_master_weights_and_grads = false;
};

struct BF16Config {
  bool enabled = false;
  bool immediate_grad_update = false;
};

struct DataTypesConfig {
  std::optional<DataType> grad_accum_dtype;  // nullopt = DeepSpeed's choice for the precision
};

// ---- ZeRO ----------------------------------------------------------------------------------------
enum class OffloadDevice { None, CPU, NVMe };

struct OffloadOptimizerConfig {
  OffloadDevice device = OffloadDevice::None;  // only "none" is supported
  std::optional<std::string> nvme_path;
  bool pin_memory = true;
  int64_t buffer_count = 4;
  double ratio = 1.0;
  bool fast_init = false;
};

struct OffloadParamConfig {
  OffloadDevice device = OffloadDevice::None;  // only "none" is supported
  std::optional<std::string> nvme_path;
  bool pin_memory = true;
  int64_t buffer_count = 5;
  int64_t buffer_size = 100000000;
  int64_t max_in_cpu = 1000000000;
};

struct ZeroConfig {
  int64_t stage = 0;  // 0, 1 or 2
  bool contiguous_gradients = true;
  bool reduce_scatter = true;
  int64_t reduce_bucket_size = 500000000;  // elements
  bool use_multi_rank_bucket_allreduce = true;
  bool allgather_partitions = true;
  int64_t allgather_bucket_size = 500000000;  // elements
  bool overlap_comm = false;
  bool load_from_fp32_weights = true;
  bool round_robin_gradients = false;
  int64_t sub_group_size = 1000000000;
  bool elastic_checkpoint = false;
  bool ignore_unused_parameters = true;
  OffloadOptimizerConfig offload_optimizer;
  OffloadParamConfig offload_param;
};

// ---- pipeline ------------------------------------------------------------------------------------
enum class PipeSchedule { OneFOneB, GPipe };

struct PipelineConfig {
  std::optional<int64_t> stages;  // nullopt = "auto" (= --pipe_parallel_size)
  std::string partition = "best";  // DeepSpeed parses and ignores it; only "best" is accepted
  bool seed_layers = false;
  int64_t activation_checkpoint_interval = 0;
  bool pipe_partitioned = true;
  bool grad_partitioned = true;
  bool use_reentrant = true;
  // "parameters", "uniform" or "type:REGEX" (the regex is matched case-insensitively against
  // layer class names, as DeepSpeed's PipelineModule does).
  std::string partition_method = "parameters";
  PipeSchedule schedule = PipeSchedule::OneFOneB;
};

// ---- recorded now, used later --------------------------------------------------------------------
struct ActivationCheckpointingConfig {
  bool partition_activations = false;
  bool contiguous_memory_optimization = false;
  bool cpu_checkpointing = false;
  std::optional<int64_t> number_checkpoints;
  bool synchronize_checkpoint_boundary = false;
  bool profile = false;
};

struct MonitorConfig {  // tensorboard and csv_monitor
  bool enabled = false;
  std::string output_path;
  std::string job_name = "DeepSpeedJobName";
};

struct WandbConfig {
  bool enabled = false;
  std::optional<std::string> group;
  std::optional<std::string> team;
  std::string project = "deepspeed";
};

struct FlopsProfilerConfig {
  bool enabled = false;
  double recompute_fwd_factor = 0.0;
  int64_t profile_step = 1;
  int64_t module_depth = -1;
  int64_t top_modules = 1;
  bool detailed = true;
  std::optional<std::string> output_file;
};

enum class TagValidation { Warn, Ignore, Fail };

struct CheckpointParallelWriteConfig {
  bool pipeline_stage = false;
};

struct CheckpointConfig {
  TagValidation tag_validation = TagValidation::Warn;
  bool load_universal = false;
  bool use_node_local_storage = false;
  CheckpointParallelWriteConfig parallel_write;
};

struct CommsLoggerConfig {
  bool enabled = false;
  bool verbose = false;
  bool prof_all = true;
  bool debug = false;
  std::vector<std::string> prof_ops;
};

// ---- the whole config ----------------------------------------------------------------------------
struct DsConfig {
  BatchSpec batch_spec;  // as written
  BatchSizes batch;      // resolved by resolve_ds_config

  OptimizerConfig optimizer;
  SchedulerConfig scheduler;

  double gradient_clipping = 0.0;  // 0 = off
  int64_t steps_per_print = 10;    // 0 = never
  bool wall_clock_breakdown = false;
  bool prescale_gradients = false;
  double gradient_predivide_factor = 1.0;
  bool dump_state = false;
  bool zero_allow_untested_optimizer = false;

  FP16Config fp16;
  BF16Config bf16;
  DataTypesConfig data_types;
  std::optional<DataType> communication_data_type;

  ZeroConfig zero_optimization;
  PipelineConfig pipeline;
  ActivationCheckpointingConfig activation_checkpointing;

  MonitorConfig tensorboard;
  MonitorConfig csv_monitor;
  WandbConfig wandb;
  FlopsProfilerConfig flops_profiler;
  CheckpointConfig checkpoint;
  CommsLoggerConfig comms_logger;

  std::string source;                   // file it came from (or "<default ds config>")
  std::vector<std::string> auto_keys;   // JSON paths written as "auto"
  bool resolved = false;                // resolve_ds_config has run

  // The precision the config asks for (bf16, fp16 or fp32).
  DataType precision() const;
};

// The config fmtrain uses without --deepspeed_config (fp32, AdamW, WarmupCosineLR), as JSON text.
std::string_view default_ds_config_json();
DsConfig default_ds_config();

// Parses and validates; no run-dependent resolution ("auto" values keep their defaults and are
// listed in auto_keys; `batch` is empty).
DsConfig load_ds_config(const std::string& path);
DsConfig parse_ds_config(const std::string& text, const std::string& source);

struct ResolveContext {
  int64_t train_steps = 0;     // --train_steps, for scheduler total_num_steps "auto"
  int dp_size = 1;             // world / (pipeline x tensor)
  int64_t hidden_size = 0;     // the model's, for bucket sizes "auto"; 0 = unknown
  int pipe_parallel_size = 0;  // --pipe_parallel_size, checked against pipeline.stages; 0 = unknown
};

// Resolves every "auto" and the batch triad for ctx.dp_size; returns one log line per resolved
// value, e.g. `config: scheduler.params.total_num_steps "auto" -> 1000 (from --train_steps)`.
// Throws InputError when something cannot be resolved. Idempotent: call again with another dp.
std::vector<std::string> resolve_ds_config(DsConfig& cfg, const ResolveContext& ctx);

// The batch triad alone (DeepSpeed's inference table, exact division). `notes`, when given,
// receives for each inferred key a line "key -> value (= how)".
BatchSizes resolve_batch(const BatchSpec& spec, int dp_size, std::vector<std::string>* notes = nullptr);

// Every value after defaults (and resolution, once resolved), as pretty JSON that parses back to
// the same config.
std::string ds_config_to_json(const DsConfig& cfg);

// The reference of every key (path, type, default, constraint, meaning) as markdown tables, one
// per section; docs/config.md embeds it.
std::string ds_config_reference_markdown();

const char* to_string(OptimizerType t);
const char* to_string(SchedulerType t);  // "" for None
const char* to_string(WarmupType t);
const char* to_string(DataType t);
const char* to_string(OffloadDevice t);
const char* to_string(PipeSchedule t);
const char* to_string(TagValidation t);

}  // namespace fm::runtime
