// The exact command lines of each launch mode, as data (argv vectors), so --dry_run prints what
// would run and tests can check them without starting anything.
//
//  ssh:    ssh -o BatchMode=yes [-p PORT] [launcher_args] HOST 'REMOTE'          one per node
//  pdsh:   [PDSH_SSH_ARGS_APPEND=...] pdsh -S -N -R ssh -f F -w H1,H2 [launcher_args] 'REMOTE'
//  slurm:  srun --nodes=N --ntasks=N --ntasks-per-node=1 --nodelist=H1,H2 --kill-on-bad-exit=1
//               --input=all [launcher_args] FMLAUNCH <agent args> PROGRAM ARGS
//  mpirun: mpirun -np W --hostfile F --map-by slot --tag-output [--allow-run-as-root] -x NAME...
//               [launcher_args] [RUNTIME exec --nv [container_args] IMAGE] PROGRAM ARGS
// REMOTE is `cd CWD && export K=V ... && exec FMLAUNCH <agent args> PROGRAM ARGS`, every word
// quoted for a POSIX login shell; under pdsh every '%' is doubled and the node's host comes from
// pdsh's %h. The agent args carry the world (node count and slots), the node's rank (or the host
// list to find it from), the rendezvous, and the options that apply on the node.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "launcher/env_export.h"
#include "launcher/world.h"

namespace fm::launcher {

struct JobSpec {
  std::string fmlaunch;  // absolute path of the fmlaunch binary (same path on every node)
  std::vector<NodeSlots> nodes;
  Rendezvous rdzv;
  double grace_period = 5.0;
  std::string log_dir;  // absolute, or empty
  DeviceVisibility device_visibility = DeviceVisibility::Rank;
  std::string container;
  std::string container_runtime;  // empty: each node picks apptainer, else singularity (mpirun: apptainer)
  std::vector<std::string> container_args;
  std::vector<std::string> program;
  std::string cwd;
  std::vector<std::string> launcher_args;
  int ssh_port = -1;
};

// Arguments of the node agent. `node`: the node's rank, or nullopt when the agent finds it from
// its host (`host_label` given, e.g. pdsh's "%h", or SLURMD_NODENAME under srun).
std::vector<std::string> agent_argv(const JobSpec& job, std::optional<int> node, const std::string& host_label);

// `cd CWD && export ... && exec AGENT...` for a POSIX shell.
std::string remote_command(const JobSpec& job, const std::vector<EnvVar>& exports, const std::vector<std::string>& agent);

std::vector<std::string> ssh_argv(const JobSpec& job, const std::string& host, const std::string& remote);
// The pre-flight probe: ssh -o BatchMode=yes -o ConnectTimeout=T [-p] [extra] HOST true
std::vector<std::string> ssh_check_argv(const std::string& host, int port, const std::vector<std::string>& extra,
                                        int timeout_s);

std::vector<std::string> pdsh_argv(const JobSpec& job, const std::string& remote_with_host_token);
// The remote command for pdsh: '%' doubled, then the host placeholder replaced by %h.
std::string pdsh_remote_command(const JobSpec& job, const std::vector<EnvVar>& exports);
// PDSH_SSH_ARGS_APPEND for the pdsh process: the inherited value plus -p PORT.
std::string pdsh_ssh_args(const std::string& inherited, int ssh_port);

std::vector<std::string> srun_argv(const JobSpec& job);

// Hostfile for mpirun: one line per slot (so aliases of one machine merge cleanly).
std::string mpirun_hostfile_text(const JobSpec& job);
std::vector<std::string> mpirun_argv(const JobSpec& job, const std::string& hostfile_path,
                                     const std::vector<std::string>& exported_names, bool as_root);

// RUNTIME exec --nv [container_args] IMAGE PROGRAM ARGS, or the program itself without a container.
std::vector<std::string> container_wrap(const std::string& runtime, const std::vector<std::string>& container_args,
                                        const std::string& image, const std::vector<std::string>& program);
// "apptainer" if installed, else "singularity" if installed, else "" (PATH lookup in `path_env`).
std::string detect_container_runtime(const std::string& path_env);

// "K='v' K2=w" prefix for shell display.
std::string env_prefix(const std::vector<EnvVar>& vars);

}  // namespace fm::launcher
