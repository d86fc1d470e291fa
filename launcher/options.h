// Command line of fmlaunch.
//
// Two forms share one parser:
//  - launcher: `fmlaunch [-H hostfile] [-i|-e filter] [--launcher K] ... PROGRAM [ARGS...]` starts
//    a whole job (all nodes);
//  - per-node agent, torchrun-compatible: `fmlaunch --nnodes N --node_rank I --nproc_per_node G
//    --master_addr A --master_port P PROGRAM [ARGS...]` starts the G ranks of node I. Giving any of
//    --nnodes, --node_rank, --nproc_per_node, --rdzv_endpoint or --world_slots selects this form.
// Long options may be spelled with '_' or '-' and take their value as `--opt V` or `--opt=V`.
// Parsing stops at the first word that is not an option (or after `--`): that word is PROGRAM and
// everything after it goes to the program untouched. Mistakes are InputErrors naming the option.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "launcher/env_export.h"
#include "launcher/world.h"

namespace fm::launcher {

enum class LauncherKind { Local, Ssh, Pdsh, Slurm, Mpirun };

const char* launcher_name(LauncherKind kind);

struct Options {
  // Launcher form.
  std::string hostfile;
  std::string include, exclude;
  int num_nodes = -1, num_gpus = -1;
  std::optional<LauncherKind> launcher;
  std::vector<std::string> launcher_args;
  int ssh_port = -1;
  std::vector<EnvVar> env;  // --env, in order
  std::string env_file;     // --env_file; empty: .fmenv in the working directory, if present
  double heartbeat_timeout = 30.0;  // a node agent silent this long is considered lost

  // Both forms.
  std::string master_addr;  // empty: chosen by the mode
  int master_port = 29500;
  std::string container;  // image; empty: no container
  std::string container_runtime;  // apptainer | singularity; empty: whichever is installed
  std::vector<std::string> container_args;
  std::string log_dir;
  DeviceVisibility device_visibility = DeviceVisibility::Rank;  // --cuda_visible_devices
  bool dry_run = false;
  int max_restarts = 0;
  double grace_period = 5.0;

  // Agent form.
  bool agent = false;
  int nnodes = -1, node_rank = -1, nproc_per_node = -1;
  std::string world_slots;  // "0,1@0,1,2": slots of every node (heterogeneous worlds)
  std::string world_hosts;  // "h1,h2": hosts in node order (node rank found from SLURMD_NODENAME)
  std::string host_label;   // the node's name in reports; default: the host name
  bool control = false;     // started by a launcher: heartbeat/failure lines on stdout, stop on stdin EOF
  int restart_count = 0;

  bool help = false;
  bool version = false;
  std::vector<std::string> program;  // PROGRAM and its arguments
};

Options parse_options(const std::vector<std::string>& args);

std::string usage_text();

}  // namespace fm::launcher
