// Everything a training run needs to know, resolved and validated before any expensive work.
//
// prepare_run() reads the flags' files (DeepSpeed-style config, model config.json), resolves the
// config for the data-parallel size of the world, checks the parallel layout against the model,
// and opens the data (memory maps and small indexes; tokenizing raw JSONL happens in
// prepare_run_data, on one rank). Every problem is an InputError naming the flag, key or file:
// fmtrain exits 2 before allocating the model.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/datasets.h"
#include "model/llama_config.h"
#include "runtime/config/ds_config.h"
#include "runtime/config/train_args.h"
#include "zero/adam.h"
#include "zero/lr_schedule.h"

namespace fm::runtime {

struct WorldShape {
  int world_size = 1;
  int rank = 0;
};

struct RunSpec {
  TrainArgs args;
  DsConfig ds;
  model::LlamaConfig model;
  int pipe = 1;  // pipeline stages
  int dp = 1;    // data-parallel replicas
  std::vector<int> cuts;  // stage s holds layers [cuts[s], cuts[s+1]) (DeepSpeed's partitioning)
  data::DataOptions data_options;
  std::vector<std::string> notes;  // "auto" resolutions and other decisions, for the start log

  int64_t micro_batch() const { return ds.batch.train_micro_batch_size_per_gpu; }
  int64_t grad_accum() const { return ds.batch.gradient_accumulation_steps; }
  int64_t global_batch() const { return ds.batch.train_batch_size; }
  int64_t tokens_per_step() const { return global_batch() * args.max_seq_len; }
};

RunSpec prepare_run(const TrainArgs& args, const WorldShape& world);

// The config's optimizer and scheduler sections in the optimizer's terms.
zero::AdamConfig adam_config_of(const DsConfig& ds);
zero::LrScheduleParams lr_schedule_params_of(const DsConfig& ds);

// Tokenizes raw JSONL data into the cache when needed (call on one rank, the others wait).
void prepare_run_data(const RunSpec& spec);
// Opens the data and checks the model's vocabulary against the tokenizer that produced it.
data::DataSources open_run_data(const RunSpec& spec);

}  // namespace fm::runtime
