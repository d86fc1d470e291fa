// Selecting the nodes and slots a job runs on.
//
// Starts from the hostfile's hosts (in file order) and applies one of:
//  - --include / --exclude: `host[:slot,slot][@host[:slot,...]...]`; a bare host means all its
//    slots. Include keeps only what is named; exclude removes it. An IPv6 host with slots is
//    written in brackets: `[fe80::1]:0,1`.
//  - --num_nodes N (the first N hosts) and/or --num_gpus G (slots 0..G-1 on every host).
// Mixing include/exclude with each other or with num_nodes/num_gpus, naming a host or slot the
// hostfile does not have, or selecting nothing are InputErrors naming the option.
#pragma once

#include <string>
#include <vector>

#include "launcher/hostfile.h"

namespace fm::launcher {

// One node of the job: its host and the slot indices (device indices) its ranks use, in order.
struct NodeSlots {
  std::string host;
  std::vector<int> slots;
};

struct Selection {
  std::string include;
  std::string exclude;
  int num_nodes = -1;  // -1: not given
  int num_gpus = -1;
};

std::vector<NodeSlots> select_resources(const Hostfile& hostfile, const Selection& sel);

// "0,1" -> {0,1}; the inverse of format_slot_list.
std::vector<int> parse_slot_list(const std::string& text, const std::string& where);
std::string format_slot_list(const std::vector<int>& slots);

}  // namespace fm::launcher
