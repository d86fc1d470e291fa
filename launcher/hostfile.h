// Hostfiles and host names.
//
// A hostfile lists one node per line as `host slots=N` (N processes on that node); `#` starts a
// comment, blank lines are skipped. The order of the lines is the order of the nodes: node 0 is
// the first line, and ranks are numbered node by node. Any mistake (a bad line, zero slots, a host
// listed twice, a host name that is not a plain name or an IP address) is an InputError naming
// file:line, raised before anything starts.
//
// Host names go to ssh, pdsh and srun; only names made of [A-Za-z0-9._-] (not starting with '-')
// and IPv4/IPv6 addresses are accepted, so no host name can smuggle shell syntax or an option.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fm::launcher {

struct HostEntry {
  std::string host;
  int slots = 0;
  int line = 0;  // 1-based line in the hostfile; 0 when the host did not come from a file
};

struct Hostfile {
  std::string path;
  std::vector<HostEntry> hosts;
};

bool is_valid_host(std::string_view host);

// Throws InputError(where, ...) when `host` is not a valid host name or address.
void check_host(std::string_view host, const std::string& where);

Hostfile parse_hostfile(std::string_view text, const std::string& path);
Hostfile read_hostfile(const std::string& path);

}  // namespace fm::launcher
