#include "launcher/world.h"

#include <fmt/format.h>

#include "runtime/base/error.h"

namespace fm::launcher {

World::World(std::vector<NodeSlots> nodes) : nodes_(std::move(nodes)) {
  for (const auto& n : nodes_) {
    offsets_.push_back(world_size_);
    world_size_ += static_cast<int>(n.slots.size());
  }
}

std::vector<RankPlacement> World::ranks_of_node(int node) const {
  std::vector<RankPlacement> out;
  const auto& n = nodes_.at(node);
  for (int i = 0; i < static_cast<int>(n.slots.size()); ++i) out.push_back({offsets_[node] + i, i, node, n.slots[i]});
  return out;
}

std::vector<RankPlacement> World::all_ranks() const {
  std::vector<RankPlacement> out;
  for (int n = 0; n < num_nodes(); ++n)
    for (const auto& r : ranks_of_node(n)) out.push_back(r);
  return out;
}

bool World::is_uniform() const {
  if (nodes_.empty()) return false;
  const size_t g = nodes_[0].slots.size();
  for (const auto& n : nodes_) {
    if (n.slots.size() != g) return false;
    for (size_t i = 0; i < g; ++i)
      if (n.slots[i] != static_cast<int>(i)) return false;
  }
  return true;
}

std::string device_for_slot(int slot, const std::optional<std::string>& inherited, const std::string& host) {
  if (!inherited) return std::to_string(slot);
  if (inherited->empty()) return "";  // the node hides every GPU on purpose (CPU runs): keep it so
  std::vector<std::string> devices;
  std::string cur;
  for (char c : *inherited) {
    if (c == ',') {
      devices.push_back(cur), cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty() || !devices.empty()) devices.push_back(cur);
  if (slot >= static_cast<int>(devices.size()))
    throw InputError("CUDA_VISIBLE_DEVICES",
                     fmt::format("on host '{}' it lists {} device(s) ('{}') but slot {} is needed", host,
                                 devices.size(), *inherited, slot),
                     "start fewer processes per node (--num_gpus / --nproc_per_node) or unset CUDA_VISIBLE_DEVICES");
  return devices[slot];
}

const char* device_visibility_name(DeviceVisibility v) {
  switch (v) {
    case DeviceVisibility::Rank: return "rank";
    case DeviceVisibility::Node: return "node";
    case DeviceVisibility::Inherit: return "inherit";
  }
  return "?";
}

std::vector<EnvVar> rank_environment(const World& world, const RankPlacement& r, const Rendezvous& rdzv,
                                     const std::optional<std::string>& inherited_devices,
                                     DeviceVisibility visibility) {
  const auto& node = world.node(r.node_rank);
  const std::string restarts = std::to_string(rdzv.restart_count);
  std::vector<EnvVar> env = {
      {"RANK", std::to_string(r.rank)},
      {"LOCAL_RANK", std::to_string(r.local_rank)},
      {"WORLD_SIZE", std::to_string(world.world_size())},
      {"LOCAL_WORLD_SIZE", std::to_string(node.slots.size())},
      {"NODE_RANK", std::to_string(r.node_rank)},
      {"GROUP_RANK", std::to_string(r.node_rank)},
      {"GROUP_WORLD_SIZE", std::to_string(world.num_nodes())},
      {"MASTER_ADDR", rdzv.master_addr},
      {"MASTER_PORT", std::to_string(rdzv.master_port)},
      {"FM_RESTART_COUNT", restarts},
      {"TORCHELASTIC_RESTART_COUNT", restarts},
      // The launcher tags each output line with its rank: fmtrain then leaves its own tag out.
      {"FM_LAUNCHER_TAGS", "1"},
  };
  if (visibility == DeviceVisibility::Inherit) return env;
  std::string devices;
  if (visibility == DeviceVisibility::Rank) {
    devices = device_for_slot(r.slot, inherited_devices, node.host);
  } else {
    for (size_t i = 0; i < node.slots.size(); ++i) {
      if (i) devices += ',';
      devices += device_for_slot(node.slots[i], inherited_devices, node.host);
    }
  }
  env.insert(env.begin() + 9, {"CUDA_VISIBLE_DEVICES", devices});
  return env;
}

std::string format_world_slots(const World& world) {
  std::string out;
  for (int i = 0; i < world.num_nodes(); ++i) {
    if (i) out += '@';
    out += format_slot_list(world.node(i).slots);
  }
  return out;
}

std::vector<NodeSlots> parse_world_slots(const std::string& text, const std::string& where) {
  std::vector<NodeSlots> nodes;
  size_t start = 0;
  while (true) {
    size_t p = text.find('@', start);
    std::string part = text.substr(start, p == std::string::npos ? std::string::npos : p - start);
    nodes.push_back({"", parse_slot_list(part, where)});
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return nodes;
}

}  // namespace fm::launcher
