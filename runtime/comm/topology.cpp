#include "runtime/comm/topology.h"

#include <fmt/format.h>

#include <algorithm>

#include "runtime/base/error.h"

namespace fm::comm {

Topology::Topology(int world_size, int pipe_size, int tensor_size, const std::string& pipe_flag,
                   const std::string& tensor_flag)
    : world_(world_size), pipe_(pipe_size), data_(0), tensor_(tensor_size) {
  FM_CHECK(world_size >= 1, "world size must be positive");
  if (tensor_size != 1)
    throw InputError(tensor_flag, fmt::format("tensor parallelism ({}) is not supported yet", tensor_size),
                     "use 1; split the model with pipeline stages and replicate it with data parallelism");
  if (pipe_size < 1)
    throw InputError(pipe_flag, fmt::format("must be at least 1, got {}", pipe_size), "1 means no pipeline parallelism");
  if (world_size % (pipe_size * tensor_size) != 0)
    throw InputError(pipe_flag,
                     fmt::format("{} pipeline stages do not divide the world size {}", pipe_size, world_size),
                     fmt::format("use a divisor of {} (the world is pipeline x data-parallel ranks)", world_size));
  data_ = world_size / (pipe_size * tensor_size);
}

void Topology::check_rank(int rank) const {
  FM_CHECK(rank >= 0 && rank < world_, fmt::format("rank {} outside a world of {}", rank, world_));
}

RankCoord Topology::coord(int rank) const {
  check_rank(rank);
  return {rank / (data_ * tensor_), (rank / tensor_) % data_, rank % tensor_};
}

int Topology::rank_of(int stage, int data, int tensor) const {
  FM_CHECK(stage >= 0 && stage < pipe_ && data >= 0 && data < data_ && tensor >= 0 && tensor < tensor_,
           fmt::format("coordinate ({}, {}, {}) outside the topology", stage, data, tensor));
  return (stage * data_ + data) * tensor_ + tensor;
}

std::vector<int> Topology::data_parallel_ranks(int rank) const {
  const auto c = coord(rank);
  std::vector<int> v;
  for (int d = 0; d < data_; ++d) v.push_back(rank_of(c.stage, d, c.tensor));
  return v;
}

std::vector<int> Topology::pipeline_ranks(int rank) const {
  const auto c = coord(rank);
  std::vector<int> v;
  for (int s = 0; s < pipe_; ++s) v.push_back(rank_of(s, c.data, c.tensor));
  return v;
}

std::vector<int> Topology::tied_ranks(int rank) const {
  if (pipe_ == 1) return {};
  const auto c = coord(rank);
  return {rank_of(0, c.data, c.tensor), rank_of(pipe_ - 1, c.data, c.tensor)};
}

std::optional<int> Topology::prev_stage_rank(int rank) const {
  const auto c = coord(rank);
  if (c.stage == 0) return std::nullopt;
  return rank_of(c.stage - 1, c.data, c.tensor);
}

std::optional<int> Topology::next_stage_rank(int rank) const {
  const auto c = coord(rank);
  if (c.stage == pipe_ - 1) return std::nullopt;
  return rank_of(c.stage + 1, c.data, c.tensor);
}

std::vector<std::vector<int>> Topology::data_parallel_groups() const {
  std::vector<std::vector<int>> g;
  for (int s = 0; s < pipe_; ++s)
    for (int t = 0; t < tensor_; ++t) g.push_back(data_parallel_ranks(rank_of(s, 0, t)));
  return g;
}

std::vector<std::vector<int>> Topology::pipeline_groups() const {
  std::vector<std::vector<int>> g;
  for (int d = 0; d < data_; ++d)
    for (int t = 0; t < tensor_; ++t) g.push_back(pipeline_ranks(rank_of(0, d, t)));
  return g;
}

std::string Topology::table(const std::vector<std::string>& hosts) const {
  FM_CHECK(hosts.empty() || static_cast<int>(hosts.size()) == world_, "one host name per rank");
  std::string out = fmt::format("layout: {} rank{} = {} pipeline stage{} x {} data-parallel replica{}{}\n", world_,
                                world_ == 1 ? "" : "s", pipe_, pipe_ == 1 ? "" : "s", data_, data_ == 1 ? "" : "s",
                                tensor_ > 1 ? fmt::format(" x {} tensor", tensor_) : std::string{});
  out += fmt::format("{:>6} {:>6} {:>5}", "rank", "stage", "data");
  if (tensor_ > 1) out += fmt::format(" {:>6}", "tensor");
  if (!hosts.empty()) out += "  host";
  out += "\n";
  for (int r = 0; r < world_; ++r) {
    const auto c = coord(r);
    out += fmt::format("{:>6} {:>6} {:>5}", r, c.stage, c.data);
    if (tensor_ > 1) out += fmt::format(" {:>6}", c.tensor);
    if (!hosts.empty()) out += "  " + hosts[r];
    out += "\n";
  }
  return out;
}

RankGroups make_groups(const CommPtr& world, const Topology& topo) {
  FM_CHECK(world->size() == topo.world_size(),
           fmt::format("topology of {} ranks for a world of {}", topo.world_size(), world->size()));
  const int me = world->world_rank();
  RankGroups g;
  g.coord = topo.coord(me);
  g.world = world;
  g.data_parallel = world->new_group(topo.data_parallel_ranks(me), "data-parallel");
  g.pipeline = world->new_group(topo.pipeline_ranks(me), "pipeline");
  if (topo.pipe_size() > 1) g.tied = world->new_group(topo.tied_ranks(me), "tied-weight");
  if (auto p = topo.prev_stage_rank(me)) {
    g.prev_stage = g.coord.stage - 1;
    g.prev_stage_world = *p;
  }
  if (auto n = topo.next_stage_rank(me)) {
    g.next_stage = g.coord.stage + 1;
    g.next_stage_world = *n;
  }
  return g;
}

}  // namespace fm::comm
