// Saving and resuming across all ranks of a job: the protocol of protocol.h driven over the world
// communicator. Every rank calls these functions, in the same order.
//
// save_checkpoint: rank 0 starts the save (temporary directory, broadcast to all); every writing
// rank writes its shard; the ranks exchange their shard records and statuses (the barrier between
// "write" and "commit"); rank 0 commits and tells everyone the outcome. A failure anywhere (a
// disk that fills up, a rank's I/O error) is a RuntimeFault on every rank with the same message
// naming the failing rank and file; nothing is committed, the previous checkpoint and `latest`
// stay as they were.
//
// open_for_resume: rank 0 picks the checkpoint (--resume auto: by `latest`, falling back past
// damaged or incomplete checkpoints with a warning naming each and why; PATH: exactly that one)
// and checks manifest, files, sizes and the model config; then every rank verifies the checksums
// of the files it will read; a damaged file found by any rank makes every rank skip that
// checkpoint (auto) or fail with the same InputError naming the file (PATH). Checkpoints of
// another model are an InputError in both modes.
//
// While either runs, the world communicator's timeout is at least 30 minutes: the ranks wait for
// the slowest one's file I/O at the exchange (the timeout is restored afterwards).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/llama_config.h"
#include "model/param_layout.h"
#include "runtime/checkpoint/manifest.h"
#include "runtime/checkpoint/protocol.h"
#include "runtime/checkpoint/reader.h"
#include "runtime/checkpoint/shard_writer.h"
#include "runtime/comm/communicator.h"
#include "runtime/config/train_args.h"

namespace fm::checkpoint {

// The flat range of its stage buffer a rank stores: its ZeRO partition (stages 1-3: every data-
// parallel rank writes), or the whole buffer on data-parallel rank 0 only (stage 0: the others
// hold copies). `end` may reach past stage_numel (padding, not stored).
struct ShardRange {
  bool writes = false;
  int64_t begin = 0, end = 0;
};
ShardRange shard_range(int zero_stage, int dp_size, int dp_rank, int64_t stage_numel);

struct SaveRequest {
  std::string output_dir;  // checkpoints go to <output_dir>/checkpoints
  int64_t step = 0;
  bool writes = true;  // shard_range().writes
  ShardData shard;     // this rank's data (when writes)
  // Read on rank 0 only:
  const model::LlamaConfig* model = nullptr;
  Topology topology;
  TrainState state;
  int max_checkpoints = 0;  // --max_checkpoints (0 = keep all)
  std::string keep;         // the checkpoint directory the run resumed from: never removed
};

struct SaveResult {
  std::string path;                  // the committed checkpoint
  std::vector<std::string> removed;  // by retention (rank 0)
  int64_t bytes = 0;                 // all shards
  double seconds = 0;
};

SaveResult save_checkpoint(comm::Communicator& world, const SaveRequest& req);

struct ResumeRequest {
  runtime::ResumeMode mode = runtime::ResumeMode::Auto;
  std::string path;        // ResumeMode::Path
  std::string output_dir;  // ResumeMode::Auto looks in <output_dir>/checkpoints
  std::string flag = "--resume";
  const model::LlamaConfig* model = nullptr;
  // What this rank will read: the whole parameter buffer of its stage and Adam's moments for
  // [state_begin, state_end) (its ZeRO partition, or the whole buffer without ZeRO).
  const model::ParamLayout* layout = nullptr;
  int64_t state_begin = 0, state_end = 0;
};

struct ResumeResult {
  std::unique_ptr<CheckpointReader> reader;  // null: nothing to resume, start from scratch
  std::vector<std::string> skipped;          // checkpoints passed over and why (rank 0)
};

ResumeResult open_for_resume(comm::Communicator& world, const ResumeRequest& req);

// Fills this rank's buffers from a checkpoint: params = the whole stage buffer (layout.total
// floats), exp_avg / exp_avg_sq = [state_begin, state_end) (zeros past layout.total); a null
// pointer skips that kind. Host memory.
void load_rank_state(const CheckpointReader& reader, const model::ParamLayout& layout, int64_t state_begin,
                     int64_t state_end, float* params, float* exp_avg, float* exp_avg_sq);

}  // namespace fm::checkpoint
