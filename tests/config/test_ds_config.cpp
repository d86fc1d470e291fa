#include <doctest/doctest.h>

#include <filesystem>
#include <functional>

#include "config_test_util.h"
#include "runtime/base/error.h"
#include "runtime/config/ds_config.h"

namespace fm::runtime {
namespace {

const std::string kOptimizer = R"("optimizer": {"type": "AdamW", "params": {"lr": 1e-4}})";

DsConfig parse(const std::string& body) { return parse_ds_config("{" + body + "}", "t.json"); }

ResolveContext ctx(int dp, int64_t train_steps = 100, int64_t hidden = 64, int pipe = 1) {
  ResolveContext c;
  c.dp_size = dp;
  c.train_steps = train_steps;
  c.hidden_size = hidden;
  c.pipe_parallel_size = pipe;
  return c;
}

InputError error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e;
  }
  FAIL("no InputError");
  return InputError("", "");
}

TEST_CASE("ds_config: defaults of a minimal config follow DeepSpeed") {
  DsConfig c = parse(R"("train_micro_batch_size_per_gpu": 4, "optimizer": {"type": "adam"})");
  // "adam" is matched case-insensitively and means AdamW (decoupled decay) unless adam_w_mode false.
  CHECK(c.optimizer.type == OptimizerType::Adam);
  CHECK(c.optimizer.decoupled_weight_decay());
  CHECK(c.optimizer.params.lr == 1e-3);
  CHECK(c.optimizer.params.betas == std::array<double, 2>{0.9, 0.999});
  CHECK(c.optimizer.params.eps == 1e-8);
  CHECK(c.optimizer.params.weight_decay == 0.0);
  CHECK(c.optimizer.params.bias_correction);
  CHECK(c.scheduler.type == SchedulerType::None);
  CHECK(c.gradient_clipping == 0.0);
  CHECK(c.steps_per_print == 10);
  CHECK(c.gradient_predivide_factor == 1.0);
  CHECK_FALSE(c.fp16.enabled);
  CHECK(c.fp16.loss_scale == 0.0);
  CHECK(c.fp16.initial_scale_power == 16);
  CHECK(c.fp16.loss_scale_window == 1000);
  CHECK(c.fp16.hysteresis == 2);
  CHECK(c.fp16.min_loss_scale == 1.0);
  CHECK(c.precision() == DataType::FP32);
  CHECK_FALSE(c.data_types.grad_accum_dtype.has_value());
  CHECK_FALSE(c.communication_data_type.has_value());
  CHECK(c.zero_optimization.stage == 0);
  CHECK(c.zero_optimization.reduce_bucket_size == 500000000);
  CHECK(c.zero_optimization.allgather_bucket_size == 500000000);
  CHECK(c.zero_optimization.contiguous_gradients);
  CHECK(c.zero_optimization.reduce_scatter);
  CHECK_FALSE(c.zero_optimization.overlap_comm);
  CHECK(c.zero_optimization.offload_optimizer.device == OffloadDevice::None);
  CHECK_FALSE(c.pipeline.stages.has_value());
  CHECK(c.pipeline.partition_method == "parameters");
  CHECK(c.pipeline.schedule == PipeSchedule::OneFOneB);
  CHECK(c.checkpoint.tag_validation == TagValidation::Warn);
  CHECK(c.tensorboard.job_name == "DeepSpeedJobName");
  CHECK(c.wandb.project == "deepspeed");
  CHECK(c.flops_profiler.module_depth == -1);
  CHECK(c.comms_logger.prof_all);
  CHECK_FALSE(c.resolved);
  CHECK(c.auto_keys.empty());

  DsConfig l2 = parse(R"("train_micro_batch_size_per_gpu": 4,
                         "optimizer": {"type": "Adam", "params": {"adam_w_mode": false}})");
  CHECK_FALSE(l2.optimizer.decoupled_weight_decay());
  DsConfig w = parse(R"("train_micro_batch_size_per_gpu": 4,
                        "optimizer": {"type": "ADAMW", "params": {"adam_w_mode": false}})");
  CHECK(w.optimizer.type == OptimizerType::AdamW);
  CHECK(w.optimizer.decoupled_weight_decay());  // AdamW is always decoupled
}

TEST_CASE("ds_config: every section is read") {
  DsConfig c = parse(R"(
    // comments and trailing commas are accepted, as with DeepSpeed's hjson loader
    "train_batch_size": 64,
    "train_micro_batch_size_per_gpu": 2,
    "optimizer": {"type": "AdamW", "params": {"lr": 2e-4, "betas": [0.8, 0.9], "eps": 1e-6,
                  "weight_decay": 0.05, "bias_correction": false, "torch_adam": true}},
    "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 1e-5, "cycle_max_lr": 1e-3,
                  "cycle_first_step_size": 100, "decay_step_size": 10, "decay_lr_rate": 0.1,
                  "cycle_momentum": false}},
    "gradient_clipping": 0.5,
    "steps_per_print": 0,
    "wall_clock_breakdown": true,
    "prescale_gradients": true,
    "gradient_predivide_factor": 2.0,
    "dump_state": true,
    "zero_allow_untested_optimizer": true,
    "fp16": {"enabled": true, "auto_cast": true, "loss_scale": 128, "initial_scale_power": 12,
             "loss_scale_window": 500, "hysteresis": 4, "consecutive_hysteresis": true, "min_loss_scale": 0.5},
    "bf16": {"enabled": false, "immediate_grad_update": true},
    "data_types": {"grad_accum_dtype": "bf16"},
    "communication_data_type": "fp32",
    "zero_optimization": {"stage": 2, "contiguous_gradients": false, "reduce_scatter": false,
                          "reduce_bucket_size": 2e8, "allgather_partitions": false,
                          "allgather_bucket_size": 300000000, "overlap_comm": true,
                          "round_robin_gradients": true, "sub_group_size": 1e8,
                          "load_from_fp32_weights": false,
                          "offload_optimizer": {"device": "none", "pin_memory": true, "buffer_count": 8},
                          "offload_param": {"device": "none", "buffer_size": 1e7}},
    "pipeline": {"stages": 2, "partition": "best", "seed_layers": true, "activation_checkpoint_interval": 1,
                 "pipe_partitioned": false, "grad_partitioned": false, "use_reentrant": false,
                 "partition_method": "Type:Decoder", "schedule": "gpipe"},
    "activation_checkpointing": {"partition_activations": true, "contiguous_memory_optimization": true,
                                 "cpu_checkpointing": true, "number_checkpoints": 4,
                                 "synchronize_checkpoint_boundary": true, "profile": true},
    "tensorboard": {"enabled": true, "output_path": "tb/", "job_name": "run1"},
    "csv_monitor": {"enabled": true, "output_path": "csv/"},
    "wandb": {"enabled": true, "group": "g", "team": "t", "project": "p"},
    "flops_profiler": {"enabled": true, "profile_step": 3, "module_depth": 2, "top_modules": 5,
                       "detailed": false, "output_file": "flops.txt", "recompute_fwd_factor": 1.0},
    "checkpoint": {"tag_validation": "FAIL", "load_universal": true, "use_node_local_storage": true,
                   "parallel_write": {"pipeline_stage": true}},
    "comms_logger": {"enabled": true, "verbose": true, "prof_all": false, "debug": true,
                     "prof_ops": ["all_reduce", "broadcast"]},
  )");
  CHECK(*c.batch_spec.train_batch_size == 64);
  CHECK(*c.batch_spec.train_micro_batch_size_per_gpu == 2);
  CHECK_FALSE(c.batch_spec.gradient_accumulation_steps.has_value());
  CHECK(c.optimizer.params.lr == 2e-4);
  CHECK(c.optimizer.params.betas == std::array<double, 2>{0.8, 0.9});
  CHECK(c.optimizer.params.eps == 1e-6);
  CHECK(c.optimizer.params.weight_decay == 0.05);
  CHECK_FALSE(c.optimizer.params.bias_correction);
  CHECK(c.optimizer.params.torch_adam);
  CHECK(c.scheduler.type == SchedulerType::OneCycle);
  CHECK(c.scheduler.one_cycle.cycle_min_lr == 1e-5);
  CHECK(c.scheduler.one_cycle.cycle_max_lr == 1e-3);
  CHECK(c.scheduler.one_cycle.second_step_size() == 100);  // defaults to the first
  CHECK(c.scheduler.one_cycle.decay_step_size == 10);
  CHECK(c.scheduler.one_cycle.decay_lr_rate == 0.1);
  CHECK_FALSE(c.scheduler.one_cycle.cycle_momentum);
  CHECK(c.scheduler.one_cycle.cycle_min_mom == 0.8);
  CHECK(c.gradient_clipping == 0.5);
  CHECK(c.steps_per_print == 0);
  CHECK(c.wall_clock_breakdown);
  CHECK(c.prescale_gradients);
  CHECK(c.gradient_predivide_factor == 2.0);
  CHECK(c.dump_state);
  CHECK(c.fp16.enabled);
  CHECK(c.fp16.auto_cast);
  CHECK(c.fp16.loss_scale == 128);
  CHECK(c.fp16.initial_scale_power == 12);
  CHECK(c.fp16.loss_scale_window == 500);
  CHECK(c.fp16.hysteresis == 4);
  CHECK(c.fp16.consecutive_hysteresis);
  CHECK(c.fp16.min_loss_scale == 0.5);
  CHECK(c.precision() == DataType::FP16);
  CHECK(c.bf16.immediate_grad_update);
  CHECK(*c.data_types.grad_accum_dtype == DataType::BF16);
  CHECK(*c.communication_data_type == DataType::FP32);
  const ZeroConfig& z = c.zero_optimization;
  CHECK(z.stage == 2);
  CHECK_FALSE(z.contiguous_gradients);
  CHECK_FALSE(z.reduce_scatter);
  CHECK(z.reduce_bucket_size == 200000000);
  CHECK_FALSE(z.allgather_partitions);
  CHECK(z.allgather_bucket_size == 300000000);
  CHECK(z.overlap_comm);
  CHECK(z.round_robin_gradients);
  CHECK(z.sub_group_size == 100000000);
  CHECK_FALSE(z.load_from_fp32_weights);
  CHECK(z.offload_optimizer.pin_memory);
  CHECK(z.offload_optimizer.buffer_count == 8);
  CHECK(z.offload_param.buffer_size == 10000000);
  const PipelineConfig& p = c.pipeline;
  CHECK(*p.stages == 2);
  CHECK(p.seed_layers);
  CHECK(p.activation_checkpoint_interval == 1);
  CHECK_FALSE(p.pipe_partitioned);
  CHECK_FALSE(p.grad_partitioned);
  CHECK_FALSE(p.use_reentrant);
  CHECK(p.partition_method == "type:Decoder");  // method name lower-cased, pattern kept
  CHECK(p.schedule == PipeSchedule::GPipe);
  const ActivationCheckpointingConfig& a = c.activation_checkpointing;
  CHECK((a.partition_activations && a.contiguous_memory_optimization && a.cpu_checkpointing &&
         a.synchronize_checkpoint_boundary && a.profile));
  CHECK(*a.number_checkpoints == 4);
  CHECK(c.tensorboard.enabled);
  CHECK(c.tensorboard.output_path == "tb/");
  CHECK(c.tensorboard.job_name == "run1");
  CHECK(c.csv_monitor.enabled);
  CHECK(c.csv_monitor.job_name == "DeepSpeedJobName");
  CHECK(*c.wandb.group == "g");
  CHECK(*c.wandb.team == "t");
  CHECK(c.wandb.project == "p");
  CHECK(c.flops_profiler.profile_step == 3);
  CHECK(*c.flops_profiler.output_file == "flops.txt");
  CHECK(c.checkpoint.tag_validation == TagValidation::Fail);  // case-insensitive, as DeepSpeed
  CHECK(c.checkpoint.load_universal);
  CHECK(c.checkpoint.parallel_write.pipeline_stage);
  CHECK(c.comms_logger.prof_ops == std::vector<std::string>{"all_reduce", "broadcast"});
}

TEST_CASE("ds_config: scheduler types and their parameters") {
  DsConfig w = parse(kOptimizer + R"(, "train_micro_batch_size_per_gpu": 1,
      "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 5, "warmup_type": "linear"}})");
  CHECK(w.scheduler.type == SchedulerType::WarmupLR);
  CHECK(w.scheduler.warmup_lr.warmup_num_steps == 5);
  CHECK(w.scheduler.warmup_lr.warmup_type == WarmupType::Linear);
  CHECK(w.scheduler.warmup_lr.warmup_min_lr == 0.0);
  // Without warmup_max_lr, DeepSpeed's WarmupLR warms up to the optimizer's lr.
  CHECK(w.scheduler.warmup_lr.warmup_max_lr == 1e-4);

  DsConfig d = parse(kOptimizer + R"(, "train_micro_batch_size_per_gpu": 1,
      "scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": 300}})");
  CHECK(d.scheduler.warmup_decay_lr.total_num_steps == 300);
  CHECK(d.scheduler.warmup_decay_lr.warmup_max_lr == 1e-3);  // WarmupDecayLR's own default
  CHECK(d.scheduler.warmup_decay_lr.warmup_num_steps == 1000);
  CHECK(d.scheduler.warmup_decay_lr.warmup_type == WarmupType::Log);

  DsConfig cs = parse(kOptimizer + R"(, "train_micro_batch_size_per_gpu": 1,
      "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 300}})");
  CHECK(cs.scheduler.warmup_cosine_lr.cos_min_ratio == 1e-4);
  CHECK(cs.scheduler.warmup_cosine_lr.warmup_min_ratio == 0.0);

  DsConfig r = parse(kOptimizer + R"(, "train_micro_batch_size_per_gpu": 1,
      "scheduler": {"type": "LRRangeTest", "params": {"lr_range_test_step_size": 10}})");
  CHECK(r.scheduler.lr_range_test.lr_range_test_step_size == 10);
  CHECK(r.scheduler.lr_range_test.lr_range_test_min_lr == 1e-3);

  // The scheduler name is case-sensitive, as DeepSpeed's class lookup.
  InputError e = error_of([] { parse(kOptimizer + R"(, "scheduler": {"type": "warmuplr"}, "train_batch_size": 1)"); });
  CHECK(e.where() == "scheduler.type");
  CHECK(e.hint() == "did you mean \"WarmupLR\"?");
}

TEST_CASE("ds_config: zero_optimization as a bool, sizes written as floats") {
  CHECK(parse(kOptimizer + R"(, "train_batch_size": 8, "zero_optimization": true)").zero_optimization.stage == 1);
  CHECK(parse(kOptimizer + R"(, "train_batch_size": 8, "zero_optimization": false)").zero_optimization.stage == 0);
  DsConfig c = parse(kOptimizer + R"(, "train_batch_size": 8,
      "zero_optimization": {"stage": 1, "reduce_bucket_size": 5e8, "allgather_bucket_size": 2.5E8})");
  CHECK(c.zero_optimization.reduce_bucket_size == 500000000);
  CHECK(c.zero_optimization.allgather_bucket_size == 250000000);
  // Stage itself is not a size: 1.0 is refused.
  CHECK(error_of([] { parse(kOptimizer + R"(, "train_batch_size": 8, "zero_optimization": {"stage": 1.0})"); })
            .where() == "zero_optimization.stage");
}

TEST_CASE("ds_config: batch triad, DeepSpeed's inference table with exact division") {
  auto spec = [](std::optional<int64_t> tb, std::optional<int64_t> mb, std::optional<int64_t> gas) {
    BatchSpec s;
    s.train_batch_size = tb;
    s.train_micro_batch_size_per_gpu = mb;
    s.gradient_accumulation_steps = gas;
    return s;
  };
  auto check_triad = [](const BatchSizes& b, int64_t tb, int64_t mb, int64_t gas, int dp) {
    CHECK(b.train_batch_size == tb);
    CHECK(b.train_micro_batch_size_per_gpu == mb);
    CHECK(b.gradient_accumulation_steps == gas);
    CHECK(b.dp_size == dp);
    CHECK(b.train_batch_size == b.train_micro_batch_size_per_gpu * b.gradient_accumulation_steps * dp);
  };
  for (int dp : {1, 2, 4, 8}) {
    CAPTURE(dp);
    check_triad(resolve_batch(spec(64, 2, std::nullopt), dp), 64, 2, 32 / dp, dp);    // tb, mb -> gas
    check_triad(resolve_batch(spec(64, std::nullopt, 4), dp), 64, 16 / dp, 4, dp);    // tb, gas -> mb
    check_triad(resolve_batch(spec(std::nullopt, 2, 4), dp), 8 * dp, 2, 4, dp);       // mb, gas -> tb
    check_triad(resolve_batch(spec(64, std::nullopt, std::nullopt), dp), 64, 64 / dp, 1, dp);  // tb only
    check_triad(resolve_batch(spec(std::nullopt, 3, std::nullopt), dp), 3 * dp, 3, 1, dp);     // mb only
    check_triad(resolve_batch(spec(16 * dp, 4, 4), dp), 16 * dp, 4, 4, dp);           // all three, consistent
  }
  // DeepSpeed's own example: 32 != 3 * 5 * 2.
  InputError e = error_of([&] { resolve_batch(spec(32, 3, 5), 2); });
  CHECK(e.where() == "train_batch_size");
  CHECK(e.problem() ==
        "train_batch_size 32 != train_micro_batch_size_per_gpu 3 x gradient_accumulation_steps 5 x "
        "data-parallel size 2 = 30");
  // Where DeepSpeed floors (32 // 3 // 2 = 5, then fails its check), the message names the factor.
  CHECK(error_of([&] { resolve_batch(spec(32, 3, std::nullopt), 2); }).problem() ==
        "train_batch_size 32 is not divisible by train_micro_batch_size_per_gpu (3) x data-parallel size (2) = 6");
  CHECK(error_of([&] { resolve_batch(spec(32, std::nullopt, 3), 1); }).problem() ==
        "train_batch_size 32 is not divisible by gradient_accumulation_steps (3) x data-parallel size (1) = 3");
  CHECK(error_of([&] { resolve_batch(spec(6, std::nullopt, std::nullopt), 4); }).problem() ==
        "train_batch_size 6 is not divisible by the data-parallel size (4)");
  // tb = 64, mb = 2 stops dividing at dp = 64.
  CHECK(error_of([&] { resolve_batch(spec(64, 2, std::nullopt), 64); }).problem().find("not divisible") !=
        std::string::npos);
  CHECK(error_of([&] { resolve_batch(spec(std::nullopt, std::nullopt, 4), 1); })
            .problem()
            .find("neither train_batch_size nor train_micro_batch_size_per_gpu") != std::string::npos);
  CHECK(error_of([&] { resolve_batch(spec(std::nullopt, int64_t(1) << 40, int64_t(1) << 40), 2); })
            .problem()
            .find("overflows") != std::string::npos);

  std::vector<std::string> notes;
  resolve_batch(spec(64, 2, std::nullopt), 4, &notes);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0] ==
        "gradient_accumulation_steps -> 8 (= train_batch_size 64 / (train_micro_batch_size_per_gpu 2 x "
        "data-parallel size 4))");
}

TEST_CASE("ds_config: resolution is a function of the config and dp, and can be repeated") {
  DsConfig c = parse(kOptimizer + R"(, "train_batch_size": 32, "train_micro_batch_size_per_gpu": 4)");
  resolve_ds_config(c, ctx(1));
  CHECK(c.batch.gradient_accumulation_steps == 8);
  CHECK(c.resolved);
  resolve_ds_config(c, ctx(2));
  CHECK(c.batch.gradient_accumulation_steps == 4);
  CHECK(c.batch.dp_size == 2);
  resolve_ds_config(c, ctx(8));
  CHECK(c.batch.gradient_accumulation_steps == 1);
  CHECK(error_of([&] { resolve_ds_config(c, ctx(16)); }).problem().find("not divisible") != std::string::npos);
  // The written values are kept, so another dp resolves from them again.
  CHECK(*c.batch_spec.train_batch_size == 32);
  CHECK_FALSE(c.batch_spec.gradient_accumulation_steps.has_value());
}

TEST_CASE("ds_config: \"auto\" resolution and its log lines") {
  DsConfig c = parse(R"(
    "train_batch_size": "auto", "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": "auto",
    "optimizer": {"type": "AdamW", "params": {"lr": 3e-4}},
    "scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": "auto", "warmup_max_lr": "auto",
                  "warmup_min_lr": "auto", "warmup_num_steps": 10}},
    "zero_optimization": {"stage": 2, "reduce_bucket_size": "auto", "allgather_bucket_size": "auto"},
    "pipeline": {"stages": "auto"})");
  CHECK(c.auto_keys.size() == 8);
  // Before resolution the printed config still says "auto".
  std::string unresolved = ds_config_to_json(c);
  CHECK(unresolved.find("\"total_num_steps\": \"auto\"") != std::string::npos);
  CHECK(unresolved.find("\"reduce_bucket_size\": \"auto\"") != std::string::npos);

  std::vector<std::string> log = resolve_ds_config(c, ctx(2, 1000, 256, 4));
  std::vector<std::string> want = {
      "config: gradient_accumulation_steps \"auto\" -> 1 (only train_micro_batch_size_per_gpu is given)",
      "config: train_batch_size \"auto\" -> 8 (= train_micro_batch_size_per_gpu 4 x data-parallel size 2)",
      "config: scheduler.params.total_num_steps \"auto\" -> 1000 (from --train_steps)",
      "config: scheduler.params.warmup_min_lr \"auto\" -> 0.0 (warmup starts at 0)",
      "config: scheduler.params.warmup_max_lr \"auto\" -> 0.0003 (= optimizer.params.lr)",
      "config: zero_optimization.reduce_bucket_size \"auto\" -> 65536 (= hidden_size^2, hidden_size 256)",
      "config: zero_optimization.allgather_bucket_size \"auto\" -> 65536 (= hidden_size^2, hidden_size 256)",
      "config: pipeline.stages \"auto\" -> 4 (from --pipe_parallel_size)",
  };
  CHECK(log.size() == want.size());
  for (size_t i = 0; i < std::min(log.size(), want.size()); ++i) CHECK(log[i] == want[i]);
  CHECK(c.scheduler.warmup_decay_lr.total_num_steps == 1000);
  CHECK(c.scheduler.warmup_decay_lr.warmup_max_lr == 3e-4);
  CHECK(c.scheduler.warmup_decay_lr.warmup_min_lr == 0.0);
  CHECK(c.zero_optimization.reduce_bucket_size == 65536);
  CHECK(c.zero_optimization.allgather_bucket_size == 65536);
  CHECK(*c.pipeline.stages == 4);
  CHECK(c.batch.train_batch_size == 8);

  // Unresolvable for lack of context.
  DsConfig d = parse(R"("train_micro_batch_size_per_gpu": 4, "optimizer": {"type": "AdamW"},
      "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": "auto"}},
      "zero_optimization": {"reduce_bucket_size": "auto"})");
  InputError no_steps = error_of([&] { resolve_ds_config(d, ctx(1, 0)); });
  CHECK(no_steps.where() == "scheduler.params.total_num_steps");
  CHECK(no_steps.hint().find("--train_steps") != std::string::npos);
  InputError no_hidden = error_of([&] { resolve_ds_config(d, ctx(1, 10, 0)); });
  CHECK(no_hidden.where() == "zero_optimization.reduce_bucket_size");
  resolve_ds_config(d, ctx(1, 10, 32));
  CHECK(d.scheduler.warmup_cosine_lr.total_num_steps == 10);
  CHECK(d.zero_optimization.reduce_bucket_size == 1024);
}

TEST_CASE("ds_config: pipeline.stages must agree with --pipe_parallel_size") {
  DsConfig c = parse(kOptimizer + R"(, "train_batch_size": 8, "pipeline": {"stages": 2})");
  CHECK_NOTHROW(resolve_ds_config(c, ctx(1, 10, 8, 2)));
  InputError e = error_of([&] { resolve_ds_config(c, ctx(1, 10, 8, 4)); });
  CHECK(e.where() == "pipeline.stages");
  CHECK(e.problem() == "pipeline.stages 2 disagrees with --pipe_parallel_size 4");
}

TEST_CASE("ds_config: partition_method forms") {
  auto method = [](const std::string& m) {
    return parse(kOptimizer + R"(, "train_batch_size": 8, "pipeline": {"partition_method": ")" + m + "\"}")
        .pipeline.partition_method;
  };
  CHECK(method("uniform") == "uniform");
  CHECK(method("PARAMETERS") == "parameters");
  CHECK(method("type:LlamaDecoder") == "type:LlamaDecoder");
  CHECK(method("type:(Embedding|Head)Layer") == "type:(Embedding|Head)Layer");
  CHECK(error_of([&] { method("type:"); }).problem().find("needs a regular expression") != std::string::npos);
  CHECK(error_of([&] { method("type:a:b"); }).problem().find("second ':'") != std::string::npos);
  CHECK(error_of([&] { method("uniformm"); }).hint() == "did you mean \"uniform\"?");
}

TEST_CASE("ds_config: the printed config parses back to itself") {
  DsConfig c = default_ds_config();
  resolve_ds_config(c, ctx(2, 500));
  std::string json = ds_config_to_json(c);
  DsConfig back = parse_ds_config(json, "printed.json");
  resolve_ds_config(back, ctx(2, 500));
  CHECK(ds_config_to_json(back) == json);
  CHECK(json.find("\"train_batch_size\": 16") != std::string::npos);
  CHECK(json.find("\"total_num_steps\": 500") != std::string::npos);
  // An unresolved config prints its "auto" values and also parses back.
  DsConfig raw = default_ds_config();
  std::string raw_json = ds_config_to_json(raw);
  CHECK(raw_json.find("\"total_num_steps\": \"auto\"") != std::string::npos);
  CHECK(ds_config_to_json(parse_ds_config(raw_json, "raw.json")) == raw_json);
}

TEST_CASE("ds_config: the built-in default") {
  DsConfig c = default_ds_config();
  CHECK(c.precision() == DataType::FP32);
  CHECK(c.optimizer.type == OptimizerType::AdamW);
  CHECK(c.optimizer.params.lr == 1e-3);
  CHECK(c.optimizer.params.weight_decay == 0.1);
  CHECK(c.gradient_clipping == 1.0);
  CHECK(c.steps_per_print == 10);
  CHECK(c.scheduler.type == SchedulerType::WarmupCosineLR);
  CHECK(*c.batch_spec.train_micro_batch_size_per_gpu == 8);
  CHECK(*c.batch_spec.gradient_accumulation_steps == 1);
  std::vector<std::string> log = resolve_ds_config(c, ctx(1, 20));
  CHECK(c.scheduler.warmup_cosine_lr.total_num_steps == 20);
  CHECK(c.batch.train_batch_size == 8);
}

TEST_CASE("ds_config: every file in configs/ds parses and resolves; tiny.json is the built-in default") {
  std::string dir = test::source_dir() + "/configs/ds";
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    CAPTURE(entry.path().string());
    ++count;
    DsConfig c;
    try {
      c = load_ds_config(entry.path().string());
      resolve_ds_config(c, ctx(1, 100, 64, 1));
    } catch (const InputError& e) {
      FAIL(format_input_error(e));
    }
    CHECK(c.batch.train_batch_size > 0);
  }
  CHECK(count >= 5);

  DsConfig tiny = load_ds_config(dir + "/tiny.json");
  DsConfig builtin = default_ds_config();
  resolve_ds_config(tiny, ctx(2, 77));
  resolve_ds_config(builtin, ctx(2, 77));
  CHECK(ds_config_to_json(tiny) == ds_config_to_json(builtin));

  DsConfig f = load_ds_config(dir + "/fmengine_llama.json");
  resolve_ds_config(f, ctx(2));
  CHECK(f.precision() == DataType::BF16);
  CHECK(f.optimizer.type == OptimizerType::Adam);
  CHECK(f.optimizer.params.lr == 1e-5);
  CHECK(f.optimizer.params.betas == std::array<double, 2>{0.9, 0.95});
  CHECK(f.optimizer.params.eps == 1e-6);
  CHECK(f.scheduler.warmup_lr.warmup_min_lr == 1e-6);
  CHECK(f.scheduler.warmup_lr.warmup_max_lr == 5e-5);
  CHECK(f.scheduler.warmup_lr.warmup_num_steps == 50);
  CHECK(f.gradient_clipping == 1.0);
  CHECK(f.steps_per_print == 1);
  CHECK(f.batch.gradient_accumulation_steps == 2);
  CHECK(f.zero_optimization.stage == 0);
}

TEST_CASE("ds_config: a missing file names the path") {
  InputError e = error_of([] { load_ds_config("/nonexistent/ds.json"); });
  CHECK(e.where() == "/nonexistent/ds.json");
}

}  // namespace
}  // namespace fm::runtime
