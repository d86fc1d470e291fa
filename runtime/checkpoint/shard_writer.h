// Writing one rank's shard of a checkpoint.
//
// A shard is a safetensors file (readable by model/io/safetensors.h and by the safetensors
// package) holding, for the flat range the rank owns, one F32 tensor per piece and kind, named
// piece_key(kind, tensor, begin, end) (pieces.h): first every params piece, then every exp_avg
// piece, then every exp_avg_sq piece, each kind in buffer order. __metadata__ repeats what the
// manifest records about the file (format, stage, dp_rank, layers, range).
//
// The file is written under a temporary name, fsynced and renamed, and its XXH64 is computed
// while writing (no second pass over the data). Failures (disk full, file size limit, I/O
// errors) are RuntimeFaults naming the file and the system's reason; the temporary file is
// removed.
#pragma once

#include <cstdint>
#include <string>

#include "model/param_layout.h"
#include "runtime/checkpoint/manifest.h"

namespace fm::checkpoint {

// What one rank stores: the flat range [begin, end) of its stage's buffer. Pointers are host
// memory holding that range (element i is element begin + i of the stage buffer). `end` may reach
// past layout->total (ZeRO alignment padding); those elements are not stored.
struct ShardData {
  int stage = 0, dp_rank = 0;
  const model::ParamLayout* layout = nullptr;
  int64_t begin = 0, end = 0;
  const float* params = nullptr;
  const float* exp_avg = nullptr;  // both null: a weights-only shard
  const float* exp_avg_sq = nullptr;
};

// "shard-pp<stage>-dp<dp_rank>.safetensors"
std::string shard_file_name(int stage, int dp_rank);

// Writes <dir>/<shard_file_name> and returns its record for the manifest.
ShardRecord write_shard(const std::string& dir, const ShardData& data);

}  // namespace fm::checkpoint
