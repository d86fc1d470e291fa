// Topology: which rank runs which pipeline stage of which data-parallel replica.
//
// world = pipe x data x tensor, laid out as DeepSpeed's PipeModelDataParallelTopology (axes pipe,
// data, model; the last axis varies fastest):
//     rank = (stage * data_size + data) * tensor_size + tensor
// so the data-parallel peers of a stage are adjacent ranks (gradient reductions stay on a host
// where possible) and consecutive stages of a replica are data_size ranks apart. Tensor
// parallelism is not implemented yet: tensor_size must be 1.
// Groups of a rank (lists of world ranks, ordered by their rank in the group):
//   data-parallel  - same stage (and tensor index), data = 0..D-1          (grads, ZeRO)
//   pipeline       - same data (and tensor) index, stage = 0..P-1; group rank = stage (p2p)
//   tied           - first and last stage of the same data index, when P > 1 (tied embeddings)
//   neighbours     - the previous / next stage's rank in the pipeline, or none at the ends
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"

namespace fm::comm {

struct RankCoord {
  int stage = 0, data = 0, tensor = 0;
};

class Topology {
 public:
  // InputError (naming `pipe_flag` / `tensor_flag`) when the sizes do not divide the world.
  Topology(int world_size, int pipe_size, int tensor_size = 1, const std::string& pipe_flag = "--pipe_parallel_size",
           const std::string& tensor_flag = "--tensor_parallel_size");

  int world_size() const { return world_; }
  int pipe_size() const { return pipe_; }
  int data_size() const { return data_; }
  int tensor_size() const { return tensor_; }

  RankCoord coord(int rank) const;
  int rank_of(int stage, int data, int tensor = 0) const;

  std::vector<int> data_parallel_ranks(int rank) const;
  std::vector<int> pipeline_ranks(int rank) const;
  std::vector<int> tied_ranks(int rank) const;  // {first, last} stage; empty when P == 1
  std::optional<int> prev_stage_rank(int rank) const;
  std::optional<int> next_stage_rank(int rank) const;
  bool is_first_stage(int rank) const { return coord(rank).stage == 0; }
  bool is_last_stage(int rank) const { return coord(rank).stage == pipe_ - 1; }

  // Every group of a kind, in DeepSpeed's get_axis_comm_lists order.
  std::vector<std::vector<int>> data_parallel_groups() const;
  std::vector<std::vector<int>> pipeline_groups() const;

  // A table, one line per rank: rank, stage, data index, (tensor index,) host. `hosts` may be
  // empty (no host column) or hold one name per rank.
  std::string table(const std::vector<std::string>& hosts = {}) const;

 private:
  void check_rank(int rank) const;
  int world_, pipe_, data_, tensor_;
};

// The communicators of one rank. Built collectively: every rank of `world` calls make_groups with
// the same topology (data-parallel groups first, then pipeline, then tied, so no two groups wait
// for each other).
struct RankGroups {
  RankCoord coord;
  CommPtr world;
  CommPtr data_parallel;
  CommPtr pipeline;  // rank() == stage
  CommPtr tied;      // null when P == 1
  int prev_stage = -1, next_stage = -1;  // pipeline-group ranks of the neighbours, -1 at the ends
  int prev_stage_world = -1, next_stage_world = -1;
};

RankGroups make_groups(const CommPtr& world, const Topology& topo);

}  // namespace fm::comm
