// Runs a set of ranks on this machine and supervises them: the core of the per-node agent and of
// the local launcher.
//
// Each rank runs in its own process group with its output read line by line: echoed to our
// stdout/stderr as "[rank R] line", appended raw to <log_dir>/rank_<R>.log, and kept (last lines)
// for the failure report. The group succeeds when every rank exits 0. The first rank that exits
// non-zero or dies by a signal fails it: we print rank, host, status and its last lines, send
// SIGTERM to every rank's process group, SIGKILL after the grace period (and to any orphaned
// descendant re-parented to us), and return once nothing of the job is left. SIGINT/SIGTERM/SIGHUP
// to us, and in control mode EOF on stdin or a dead stdout (the launcher is gone), stop the group
// the same way.
#pragma once

#include <string>
#include <vector>

#include "launcher/control.h"
#include "launcher/world.h"

namespace fm::launcher {

struct RankLaunch {
  RankPlacement place;
  std::string host;               // for reports
  std::vector<std::string> argv;  // the full command (container-wrapped when asked)
  std::vector<std::string> env;   // the full environment, "K=V"
};

struct GroupOptions {
  std::string log_dir;  // empty: no log files
  double grace_period = 5.0;
  bool control = false;  // heartbeat/failure lines on stdout; stop when stdin closes
  int node_rank = 0;     // reported in control lines
  int restart_count = 0;
  size_t tail_lines = 20;
};

// `signal_fd` comes from install_signal_fd().
JobOutcome run_rank_group(const std::vector<RankLaunch>& ranks, const GroupOptions& opt, int signal_fd);

// Prints "fmlaunch: <msg>" on stderr as one write.
void say(const std::string& msg);

}  // namespace fm::launcher
