// The per-node agent: torchrun-compatible flags in, one node's ranks out.
#include <limits.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <functional>

#include "launcher/commands.h"
#include "launcher/entry.h"
#include "launcher/process.h"
#include "launcher/shell.h"
#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::launcher {

std::vector<EnvVar> read_env_sources(const Options& o, bool default_file) {
  std::vector<EnvVar> file_vars;
  if (!o.env_file.empty()) {
    file_vars = read_env_file(o.env_file);
  } else if (default_file && std::filesystem::exists(kDefaultEnvFile)) {
    file_vars = read_env_file(kDefaultEnvFile);
  }
  return collect_exports({}, file_vars, o.env);
}

std::string resolve_container_runtime(const Options& o, const std::string& host) {
  if (o.container.empty()) return "";
  const char* path = std::getenv("PATH");
  if (!o.container_runtime.empty()) {
    if (find_executable(o.container_runtime, path ? path : "").empty())
      throw InputError("--container_runtime", fmt::format("'{}' is not installed on host {}", o.container_runtime, host),
                       "install it on every node, or choose the other runtime");
    return o.container_runtime;
  }
  std::string rt = detect_container_runtime(path ? path : "");
  if (rt.empty())
    throw InputError("--container", fmt::format("neither apptainer nor singularity is installed on host {}", host),
                     "install Apptainer (or SingularityCE) on every node, or run without --container");
  return rt;
}

std::string this_executable() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw RuntimeFault("cannot find the path of the fmlaunch executable (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

std::string local_host_name() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

void report_outcome(const JobOutcome& out, int attempts) {
  if (out.exit_code == 0) return;
  say(fmt::format("job failed{}: {}; exit code {}", attempts > 1 ? fmt::format(" (run {} of {})", attempts, attempts) : "",
                  describe_failure(out), out.exit_code));
}

int run_with_restarts(int first_attempt, int max_restarts, bool report,
                      const std::function<JobOutcome(int)>& once) {
  for (int attempt = first_attempt;; ++attempt) {
    JobOutcome out = once(attempt);
    if (out.exit_code == 0) return 0;
    const int done = attempt - first_attempt;
    if (out.interrupted || done >= max_restarts) {
      if (report) report_outcome(out, done + 1);
      return out.exit_code;
    }
    say(fmt::format("restarting the job ({} of {} restarts) after: {}", done + 1, max_restarts, describe_failure(out)));
  }
}

namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(',', start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return out;
}

int find_node_rank(const Options& o, const std::vector<std::string>& hosts, int nnodes) {
  if (o.node_rank >= 0) {
    if (o.node_rank >= nnodes)
      throw InputError("--node_rank", fmt::format("is {} but there are only {} node(s)", o.node_rank, nnodes),
                       "node ranks go from 0 to nnodes-1");
    return o.node_rank;
  }
  if (!hosts.empty()) {
    std::string me = o.host_label;
    const char* slurm_node = std::getenv("SLURMD_NODENAME");
    if (me.empty() && slurm_node) me = slurm_node;
    if (me.empty()) me = local_host_name();
    for (size_t i = 0; i < hosts.size(); ++i)
      if (hosts[i] == me) return static_cast<int>(i);
    throw InputError("--world_hosts", fmt::format("this node ('{}') is not among {}", me, o.world_hosts),
                     "the host list must name this node as the launcher does (hostfile or Slurm node names)");
  }
  const char* nodeid = std::getenv("SLURM_NODEID");
  long long v = 0;
  if (nodeid && std::getenv("SLURM_STEP_ID") && parse_int64(nodeid, v) && v >= 0 && v < nnodes)
    return static_cast<int>(v);
  if (nnodes == 1) return 0;
  throw InputError("--node_rank", fmt::format("is required with --nnodes {}", nnodes),
                   "give each node its index 0..nnodes-1 (inside a Slurm step SLURM_NODEID is used)");
}

}  // namespace

int run_agent(const Options& o) {
  // World: every node's slots, from --world_slots or nnodes x nproc_per_node.
  std::vector<NodeSlots> nodes;
  if (!o.world_slots.empty()) {
    nodes = parse_world_slots(o.world_slots, "--world_slots");
  } else {
    std::vector<int> slots;
    for (int i = 0; i < o.nproc_per_node; ++i) slots.push_back(i);
    nodes.assign(o.nnodes, NodeSlots{"", slots});
  }
  std::vector<std::string> hosts;
  if (!o.world_hosts.empty()) {
    hosts = split_commas(o.world_hosts);
    if (hosts.size() != nodes.size())
      throw InputError("--world_hosts", fmt::format("names {} host(s) for {} node(s)", hosts.size(), nodes.size()), "");
    for (const auto& h : hosts) check_host(h, "--world_hosts");
  }
  const int nnodes = static_cast<int>(nodes.size());
  const int node = find_node_rank(o, hosts, nnodes);
  // Reports name the node as the job does: the launcher's label, the host list, Slurm's node name.
  const char* slurm_node = std::getenv("SLURMD_NODENAME");
  std::string label = !o.host_label.empty() ? o.host_label
                      : !hosts.empty()      ? hosts[node]
                      : slurm_node          ? std::string(slurm_node)
                                            : local_host_name();
  for (int i = 0; i < nnodes; ++i) nodes[i].host = i == node ? label : (hosts.empty() ? "" : hosts[i]);
  World world(nodes);

  std::string master = o.master_addr;
  if (master.empty()) {
    if (nnodes > 1)
      throw InputError("--master_addr", fmt::format("is required with --nnodes {}", nnodes),
                       "give the host of node 0 (or --rdzv_endpoint HOST:PORT)");
    master = "127.0.0.1";
  }

  // A launcher exported its variables already; a standalone agent reads ./.fmenv like the launcher.
  const std::vector<EnvVar> extra = read_env_sources(o, /*default_file=*/!o.control);
  std::vector<std::string> base_env = current_environment_block();
  apply_env(base_env, extra);
  std::optional<std::string> inherited_devices;
  if (const char* cvd = find_env(base_env, "CUDA_VISIBLE_DEVICES")) inherited_devices = cvd;

  const std::string runtime = resolve_container_runtime(o, label);
  if (o.container.empty()) {
    const char* path = find_env(base_env, "PATH");
    if (find_executable(o.program[0], path ? path : "").empty())
      throw InputError("PROGRAM", fmt::format("'{}' is not an executable program on host {}", o.program[0], label),
                       o.program[0].find('/') == std::string::npos ? "it was looked up in PATH; give a path or fix PATH"
                                                                   : "check the path (relative paths start from the working directory)");
  }

  auto build = [&](int attempt) {
    Rendezvous rdzv{master, o.master_port, attempt};
    std::vector<RankLaunch> ranks;
    for (const auto& p : world.ranks_of_node(node)) {
      RankLaunch r;
      r.place = p;
      r.host = label;
      r.argv = container_wrap(runtime, o.container_args, o.container, o.program);
      r.env = base_env;
      apply_env(r.env, rank_environment(world, p, rdzv, inherited_devices, o.device_visibility));
      ranks.push_back(std::move(r));
    }
    return ranks;
  };

  if (o.dry_run) {
    std::string out = fmt::format("# fmlaunch --dry_run: node {} of {} ({}), ranks", node, nnodes, label);
    for (const auto& r : build(o.restart_count)) {
      std::vector<EnvVar> shown = rank_environment(world, r.place, {master, o.master_port, o.restart_count},
                                                   inherited_devices, o.device_visibility);
      for (const auto& v : extra) shown.push_back(v);
      out += fmt::format("\n{} {}", env_prefix(masked(shown)), shell_join(r.argv));
    }
    write_all(1, out + "\n");
    return 0;
  }

  const int sfd = install_signal_fd();
  GroupOptions g;
  g.log_dir = o.log_dir;
  g.grace_period = o.grace_period;
  g.control = o.control;
  g.node_rank = node;
  // Under a launcher, the launcher reports the outcome of the job.
  return run_with_restarts(o.restart_count, o.max_restarts, !o.control, [&](int attempt) {
    g.restart_count = attempt;
    return run_rank_group(build(attempt), g, sfd);
  });
}

}  // namespace fm::launcher
