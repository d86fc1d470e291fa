// The world of a job: which rank runs where, and the environment each rank starts with.
//
// Ranks are numbered node by node in node order, and within a node in slot order, so rank =
// (ranks of earlier nodes) + local rank. Every rank gets the torchrun-style variables RANK,
// LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, NODE_RANK, GROUP_RANK, GROUP_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT, FM_RESTART_COUNT and TORCHELASTIC_RESTART_COUNT, and by default CUDA_VISIBLE_DEVICES
// naming one device: the rank's slot, or, when the node's environment already sets
// CUDA_VISIBLE_DEVICES, the slot-th entry of that list (so a scheduler's device assignment is
// honoured). Other device views: every device of the node (the rank picks its LOCAL_RANK-th), or
// CUDA_VISIBLE_DEVICES left as the node has it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "launcher/env_export.h"
#include "launcher/resources.h"

namespace fm::launcher {

struct RankPlacement {
  int rank = 0;
  int local_rank = 0;
  int node_rank = 0;
  int slot = 0;
};

enum class DeviceVisibility { Rank, Node, Inherit };
const char* device_visibility_name(DeviceVisibility v);

struct Rendezvous {
  std::string master_addr;
  int master_port = 29500;
  int restart_count = 0;
};

class World {
 public:
  explicit World(std::vector<NodeSlots> nodes);
  int world_size() const { return world_size_; }
  int num_nodes() const { return static_cast<int>(nodes_.size()); }
  const std::vector<NodeSlots>& nodes() const { return nodes_; }
  const NodeSlots& node(int i) const { return nodes_.at(i); }
  std::vector<RankPlacement> ranks_of_node(int node) const;
  std::vector<RankPlacement> all_ranks() const;
  // True when every node runs slots 0..G-1 for one G (expressible as --nproc_per_node G).
  bool is_uniform() const;

 private:
  std::vector<NodeSlots> nodes_;
  std::vector<int> offsets_;
  int world_size_ = 0;
};

// The device a slot maps to; `inherited` is the node's CUDA_VISIBLE_DEVICES, if set. An inherited
// list too short for the slot is an InputError.
std::string device_for_slot(int slot, const std::optional<std::string>& inherited, const std::string& host);

// The variables fmlaunch sets for one rank (in a stable order).
std::vector<EnvVar> rank_environment(const World& world, const RankPlacement& r, const Rendezvous& rdzv,
                                     const std::optional<std::string>& inherited_devices,
                                     DeviceVisibility visibility = DeviceVisibility::Rank);

// Text forms used on agent command lines: slots of each node joined by '@' ("0,1@0,1,2"), hosts
// joined by ','.
std::string format_world_slots(const World& world);
std::vector<NodeSlots> parse_world_slots(const std::string& text, const std::string& where);

}  // namespace fm::launcher
