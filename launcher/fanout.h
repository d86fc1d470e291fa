// The launcher's side of a multi-node job: runs the processes that reach the nodes (one ssh per
// node, or one pdsh, one srun, one mpirun), relays their output, and stops everything when one node
// reports a failure.
//
// Node agents (ssh, pdsh, slurm modes) get a stdin pipe from us: EOF on it is how they learn to
// stop (it travels through ssh and srun to every agent; pdsh passes it on only when pdsh itself
// dies, so pdsh is sent SIGTERM), and it also closes by itself if we die. Their control lines
// (control.h) tell us which rank failed and keep each node's heartbeat; a node silent for too long
// counts as failed. When a node fails we stop all of them at once: EOF to every agent, then after
// the grace period plus a margin SIGTERM and SIGKILL to the
// transport processes. mpirun has no agents: it is sent SIGTERM, and its tagged output
// ("[1,R]<stdout>:...") is turned into "[rank R] ..." lines and per-rank log files.
#pragma once

#include <string>
#include <vector>

#include "launcher/control.h"
#include "launcher/env_export.h"

namespace fm::launcher {

struct NodeProcess {
  std::string label;  // "ssh node01", "pdsh", "srun", "mpirun"
  std::vector<std::string> argv;
  std::vector<std::string> env;    // its whole environment
  std::vector<EnvVar> env_changes;  // what it sets on top of ours (shown by --dry_run)
  std::vector<int> nodes;           // node indices this process serves
  // How to ask it to stop: EOF on its stdin (ssh, srun pass it on to the agents), or SIGTERM
  // (pdsh keeps its ssh children's stdin to itself; when it dies they see EOF).
  bool stop_with_sigterm = false;
};

struct FanoutOptions {
  double grace_period = 5.0;
  bool agents = true;        // the processes run node agents in control mode
  bool mpirun_tags = false;  // parse Open MPI's --tag-output prefixes
  std::string log_dir;       // with mpirun_tags: write <log_dir>/rank_<R>.log
  int restart_count = 0;
  std::vector<std::string> node_hosts;  // host of each node, for reports
  double heartbeat_timeout = 30.0;        // silence allowed between two lines of a node
  double first_heartbeat_timeout = 60.0;  // ... and before its first one (connecting, starting)
};

JobOutcome run_fanout(const std::vector<NodeProcess>& procs, const FanoutOptions& opt, int signal_fd);

}  // namespace fm::launcher
