#include "launcher/resources.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::launcher {
namespace {

struct FilterItem {
  std::string host;
  std::vector<int> slots;  // empty: the whole host
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return out;
}

std::vector<FilterItem> parse_filter(const std::string& text, const std::string& flag, const Hostfile& hf) {
  if (text.empty()) throw InputError(flag, "is empty", "expected host[:slot,slot][@host...]");
  std::set<std::string> known;
  for (const auto& h : hf.hosts) known.insert(h.host);
  std::vector<FilterItem> items;
  for (const std::string& part : split(text, '@')) {
    FilterItem item;
    std::string slots_text;
    bool has_slots = false;
    if (!part.empty() && part.front() == '[') {
      size_t close = part.find(']');
      if (close == std::string::npos)
        throw InputError(flag, fmt::format("'{}' has no closing ']'", part), "write IPv6 hosts as [addr]:slots");
      item.host = part.substr(1, close - 1);
      if (close + 1 < part.size()) {
        if (part[close + 1] != ':')
          throw InputError(flag, fmt::format("unexpected text after ']' in '{}'", part), "write [addr]:0,1");
        has_slots = true;
        slots_text = part.substr(close + 2);
      }
    } else if (known.count(part)) {
      item.host = part;  // a whole host, even one whose name holds ':' (IPv6)
    } else {
      size_t colon = part.find(':');
      item.host = part.substr(0, colon);
      if (colon != std::string::npos) {
        has_slots = true;
        slots_text = part.substr(colon + 1);
      }
    }
    if (item.host.empty())
      throw InputError(flag, fmt::format("empty host name in '{}'", text), "expected host[:slot,slot][@host...]");
    if (!known.count(item.host)) {
      std::vector<std::string> names(known.begin(), known.end());
      throw InputError(flag, fmt::format("host '{}' is not in the hostfile {}", item.host, hf.path),
                       suggestion_hint(item.host, names));
    }
    if (has_slots) item.slots = parse_slot_list(slots_text, flag);
    for (const auto& h : hf.hosts) {
      if (h.host != item.host) continue;
      for (int s : item.slots)
        if (s >= h.slots)
          throw InputError(flag, fmt::format("host '{}' has no slot {} (it has slots 0-{})", h.host, s, h.slots - 1),
                           "slots are numbered from 0 to slots-1 as given in the hostfile");
    }
    for (const auto& prev : items)
      if (prev.host == item.host)
        throw InputError(flag, fmt::format("host '{}' is named twice", item.host), "name each host once");
    items.push_back(std::move(item));
  }
  return items;
}

std::vector<int> all_slots(int n) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  return v;
}

}  // namespace

std::vector<int> parse_slot_list(const std::string& text, const std::string& where) {
  std::vector<int> slots;
  if (text.empty()) throw InputError(where, "empty slot list", "write slots as 0,1,2");
  for (const std::string& tok : split(text, ',')) {
    long long v = 0;
    if (!parse_int64(tok, v) || v < 0 || v > (1 << 16))
      throw InputError(where, fmt::format("'{}' is not a slot number", tok), "write slots as 0,1,2");
    if (std::find(slots.begin(), slots.end(), static_cast<int>(v)) != slots.end())
      throw InputError(where, fmt::format("slot {} is given twice", v), "name each slot once");
    slots.push_back(static_cast<int>(v));
  }
  return slots;
}

std::string format_slot_list(const std::vector<int>& slots) {
  std::string out;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(slots[i]);
  }
  return out;
}

std::vector<NodeSlots> select_resources(const Hostfile& hf, const Selection& sel) {
  const bool filtered = !sel.include.empty() || !sel.exclude.empty();
  if (!sel.include.empty() && !sel.exclude.empty())
    throw InputError("--include", "cannot be combined with --exclude", "use one of them");
  if (filtered && (sel.num_nodes >= 0 || sel.num_gpus >= 0))
    throw InputError(sel.num_nodes >= 0 ? "--num_nodes" : "--num_gpus",
                     fmt::format("cannot be combined with {}", sel.include.empty() ? "--exclude" : "--include"),
                     "select either by name (--include/--exclude) or by count (--num_nodes/--num_gpus)");
  std::vector<NodeSlots> nodes;
  if (!sel.include.empty()) {
    auto items = parse_filter(sel.include, "--include", hf);
    // Keep hostfile order, so node ranks do not depend on how the filter was spelled.
    for (const auto& h : hf.hosts)
      for (const auto& it : items)
        if (it.host == h.host) {
          std::vector<int> slots = it.slots.empty() ? all_slots(h.slots) : it.slots;
          std::sort(slots.begin(), slots.end());
          nodes.push_back({h.host, slots});
        }
  } else if (!sel.exclude.empty()) {
    auto items = parse_filter(sel.exclude, "--exclude", hf);
    for (const auto& h : hf.hosts) {
      std::vector<int> slots = all_slots(h.slots);
      for (const auto& it : items) {
        if (it.host != h.host) continue;
        if (it.slots.empty()) {
          slots.clear();
        } else {
          for (int s : it.slots) slots.erase(std::remove(slots.begin(), slots.end(), s), slots.end());
        }
      }
      if (!slots.empty()) nodes.push_back({h.host, slots});
    }
    if (nodes.empty())
      throw InputError("--exclude", fmt::format("excludes every slot of {}", hf.path), "leave something to run on");
  } else {
    for (const auto& h : hf.hosts) nodes.push_back({h.host, all_slots(h.slots)});
    if (sel.num_nodes >= 0) {
      if (sel.num_nodes == 0) throw InputError("--num_nodes", "must be at least 1", "");
      if (sel.num_nodes > static_cast<int>(nodes.size()))
        throw InputError("--num_nodes", fmt::format("asks for {} nodes but {} lists {}", sel.num_nodes, hf.path, nodes.size()),
                         "lower --num_nodes or add hosts to the hostfile");
      nodes.resize(sel.num_nodes);
    }
    if (sel.num_gpus >= 0) {
      if (sel.num_gpus == 0) throw InputError("--num_gpus", "must be at least 1", "");
      for (auto& n : nodes) {
        int have = static_cast<int>(n.slots.size());
        if (sel.num_gpus > have)
          throw InputError("--num_gpus", fmt::format("asks for {} processes per node but host '{}' has {} slots in {}",
                                                     sel.num_gpus, n.host, have, hf.path),
                           "lower --num_gpus or raise the host's slots");
        n.slots = all_slots(sel.num_gpus);
      }
    }
  }
  return nodes;
}

}  // namespace fm::launcher
