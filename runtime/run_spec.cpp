#include "runtime/run_spec.h"

#include <fmt/format.h>

#include <filesystem>

#include "data/tokenizer/tokenizer.h"
#include "fm_build_config.h"
#include "pipeline/partition.h"
#include "runtime/base/error.h"
#include "model/param_layout.h"
#include "runtime/embedded_defaults.h"
#include "runtime/checkpoint/export.h"
#include "runtime/checkpoint/protocol.h"

namespace fm::runtime {
namespace fs = std::filesystem;

namespace {

model::LlamaConfig choose_model_config(const TrainArgs& args, std::vector<std::string>& notes) {
  if (!args.model_config.empty()) {
    model::LlamaConfig c = model::load_llama_config(args.model_config);
    if (!args.init_ckpt.empty()) {
      // The checkpoint's own config.json describes its tensors; a different --model_config would
      // load weights into the wrong shapes, so the two must agree.
      model::LlamaConfig ck = checkpoint::is_fm_checkpoint(args.init_ckpt)
                                  ? checkpoint::checkpoint_model_config(args.init_ckpt)
                                  : model::load_llama_config(args.init_ckpt);
      if (ck.hidden_size != c.hidden_size || ck.num_hidden_layers != c.num_hidden_layers ||
          ck.num_attention_heads != c.num_attention_heads || ck.num_key_value_heads != c.num_key_value_heads ||
          ck.intermediate_size != c.intermediate_size || ck.vocab_size != c.vocab_size ||
          ck.tie_word_embeddings != c.tie_word_embeddings)
        throw InputError("--model_config", fmt::format("{} does not describe the model in --init_ckpt {}", args.model_config,
                                                       args.init_ckpt),
                         "drop --model_config: the checkpoint's config.json is used");
    }
    return c;
  }
  if (!args.init_ckpt.empty()) {
    notes.push_back(fmt::format("model config from --init_ckpt {}", args.init_ckpt));
    if (checkpoint::is_fm_checkpoint(args.init_ckpt)) return checkpoint::checkpoint_model_config(args.init_ckpt);
    return model::load_llama_config(args.init_ckpt);
  }
  notes.push_back("model config: the embedded tiny model (configs/models/tiny.json)");
  return model::parse_llama_config(std::string(embedded_tiny_model_config_json()), kEmbeddedTinyModelSource);
}

// The tokenizer raw JSONL is tokenized with: --tokenizer, else the one beside --init_ckpt.
std::string choose_tokenizer(const TrainArgs& args) {
  if (!args.tokenizer.empty()) return args.tokenizer;
  if (!args.init_ckpt.empty() && fs::exists(fs::path(args.init_ckpt) / "tokenizer.json"))
    return (fs::path(args.init_ckpt) / "tokenizer.json").string();
  return {};
}

}  // namespace

RunSpec prepare_run(const TrainArgs& args, const WorldShape& world) {
  RunSpec spec;
  spec.args = args;
  spec.ds = args.deepspeed_config.empty() ? default_ds_config() : load_ds_config(args.deepspeed_config);
  spec.model = choose_model_config(args, spec.notes);

  if (args.device == "cuda" && !FM_HAVE_CUDA)
    throw InputError("--device", "this build has no CUDA backend",
                     "build where nvcc, cuBLAS and NCCL are installed (meson setup -Dcuda=enabled)");
  if (args.model_parallel_size != 1)
    throw InputError("--model_parallel_size", "tensor parallelism is not implemented", "use --model_parallel_size 1");
  spec.pipe = args.pipe_parallel_size;
  if (spec.pipe < 1) throw InputError("--pipe_parallel_size", "must be at least 1");
  if (world.world_size % spec.pipe != 0)
    throw InputError("--pipe_parallel_size",
                     fmt::format("{} pipeline stages do not divide the world of {} ranks", spec.pipe, world.world_size),
                     "start a multiple of --pipe_parallel_size ranks (world = pipeline x data)");
  const int64_t layers = spec.model.num_layers_total();
  if (spec.pipe > layers)
    throw InputError("--pipe_parallel_size",
                     fmt::format("{} pipeline stages for a model of {} layers (embedding, {} decoder layer(s), head)",
                                 spec.pipe, layers, spec.model.num_hidden_layers),
                     fmt::format("use at most {} stages", layers));
  spec.dp = world.world_size / spec.pipe;
  spec.cuts = pipeline::partition_layers(spec.ds.pipeline.partition_method, spec.pipe,
                                         pipeline::layer_type_names(spec.model.num_hidden_layers),
                                         model::layer_param_counts(spec.model),
                                         {"pipeline.partition_method", "--pipe_parallel_size"});

  ResolveContext ctx;
  ctx.train_steps = args.train_steps;
  ctx.dp_size = spec.dp;
  ctx.hidden_size = spec.model.hidden_size;
  ctx.pipe_parallel_size = spec.pipe;
  for (auto& line : resolve_ds_config(spec.ds, ctx)) spec.notes.push_back(std::move(line));

  if (!spec.ds.optimizer.params.bias_correction)
    throw InputError("optimizer.params.bias_correction", "false is not supported: Adam always uses bias correction",
                     "remove the key or set it to true");

  // Sections that are read but not acted on: say so rather than let a user believe they work.
  const DsConfig& ds = spec.ds;
  const std::pair<bool, const char*> recorded[] = {
      {ds.tensorboard.enabled, "tensorboard.enabled: no TensorBoard events are written (metrics.jsonl has every step)"},
      {ds.csv_monitor.enabled, "csv_monitor.enabled: no CSV files are written (metrics.jsonl has every step)"},
      {ds.wandb.enabled, "wandb.enabled: nothing is sent to Weights & Biases (metrics.jsonl has every step)"},
      {ds.flops_profiler.enabled, "flops_profiler.enabled: no FLOP profile is taken"},
      {ds.comms_logger.enabled, "comms_logger.enabled: collectives are not logged"},
      {ds.wall_clock_breakdown, "wall_clock_breakdown: no per-phase timings are printed"},
      {ds.activation_checkpointing.partition_activations || ds.activation_checkpointing.cpu_checkpointing ||
           ds.pipeline.activation_checkpoint_interval > 0,
       "activation checkpointing: activations are kept, not recomputed"},
  };
  for (const auto& [on, what] : recorded)
    if (on) spec.notes.push_back(fmt::format("note: {} (accepted for compatibility; not implemented)", what));

  // The schedule checks its parameters as DeepSpeed does (InputError at scheduler.params.<key>).
  const zero::LrSchedule schedule(lr_schedule_params_of(spec.ds), spec.ds.optimizer.params.lr);
  for (const std::string& w : schedule.warnings()) spec.notes.push_back("warning: " + w);

  if (args.max_seq_len < 1) throw InputError("--max_seq_len", "must be at least 1");
  if (args.max_seq_len > spec.model.max_position_embeddings)
    spec.notes.push_back(fmt::format("warning: --max_seq_len {} exceeds the model's max_position_embeddings {}",
                                     args.max_seq_len, spec.model.max_position_embeddings));

  data::DataOptions& d = spec.data_options;
  d.data_path = args.data_path;
  d.split = args.split;
  d.seq_len = static_cast<int>(args.max_seq_len);
  d.seed = static_cast<uint64_t>(args.seed);
  d.tokenizer = choose_tokenizer(args);
  d.cache_dir = (fs::path(args.output_dir) / "data_cache").string();
  d.prep_threads = 0;
  return spec;
}

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
    case SchedulerType::None: return zero::ConstantLRParams{};
    case SchedulerType::WarmupLR: return s.warmup_lr;
    case SchedulerType::WarmupDecayLR: return s.warmup_decay_lr;
    case SchedulerType::WarmupCosineLR: return s.warmup_cosine_lr;
    case SchedulerType::OneCycle: return s.one_cycle;
    case SchedulerType::LRRangeTest: return s.lr_range_test;
  }
  return zero::ConstantLRParams{};
}

void prepare_run_data(const RunSpec& spec) {
  if (data::data_needs_preparation(spec.data_options)) data::prepare_data(spec.data_options);
}

data::DataSources open_run_data(const RunSpec& spec) {
  data::DataSources sources = data::open_data(spec.data_options);
  const int64_t tok_vocab = sources.tokenizer_vocab_size;
  if (tok_vocab > spec.model.vocab_size) {
    // Padded model vocabularies (vocab_size above the tokenizer's) are fine; a smaller one would
    // index past the embedding table.
    throw InputError(spec.model.source.empty() ? "vocab_size" : spec.model.source + ": vocab_size",
                     fmt::format("the model's vocab_size {} is smaller than the tokenizer's {} ids",
                                 spec.model.vocab_size, tok_vocab),
                     fmt::format("use a model config with vocab_size >= {}", tok_vocab));
  }
  return sources;
}

}  // namespace fm::runtime
