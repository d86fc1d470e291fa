// The launcher form: from a hostfile (or a Slurm allocation, or this machine) to a running job.
#include <dirent.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "launcher/commands.h"
#include "launcher/entry.h"
#include "launcher/fanout.h"
#include "launcher/process.h"
#include "launcher/shell.h"
#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::launcher {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

// Processes per node when nothing says: the visible GPUs, else one.
int default_local_slots() {
  if (const char* cvd = std::getenv("CUDA_VISIBLE_DEVICES"); cvd && *cvd) {
    int n = 1;
    for (const char* c = cvd; *c; ++c) n += *c == ',';
    return n;
  }
  int gpus = 0;
  if (DIR* d = opendir("/dev")) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      long long idx = 0;
      if (name.rfind("nvidia", 0) == 0 && parse_int64(name.substr(6), idx)) ++gpus;
    }
    closedir(d);
  }
  return gpus > 0 ? gpus : 1;
}

LauncherKind choose_launcher(const Options& o) {
  if (o.launcher) return *o.launcher;
  if (o.hostfile.empty()) return LauncherKind::Local;
  return find_executable("pdsh", env_or("PATH", "")).empty() ? LauncherKind::Ssh : LauncherKind::Pdsh;
}

void require_tool(const std::string& tool, LauncherKind kind) {
  if (!find_executable(tool, env_or("PATH", "")).empty()) return;
  throw InputError("--launcher", fmt::format("the {} launcher needs '{}', which is not on PATH", launcher_name(kind), tool),
                   "install it, or choose another --launcher");
}

std::vector<std::string> slurm_allocation_nodes() {
  const std::string list = env_or("SLURM_JOB_NODELIST", env_or("SLURM_NODELIST", ""));
  if (list.empty()) return {};
  SpawnRequest req;
  req.argv = {"scontrol", "show", "hostnames", list};
  req.env = current_environment_block();
  auto res = run_captured({req}, 20.0);
  if (res[0].status != 0)
    throw InputError("--launcher slurm", fmt::format("'scontrol show hostnames {}' failed: {}", list, res[0].output),
                     "run fmlaunch inside a Slurm allocation (sbatch/salloc) on a node with the Slurm client tools");
  std::vector<std::string> nodes;
  LineSplitter split;
  for (auto& l : split.feed(res[0].output)) if (!l.empty()) nodes.push_back(l);
  for (auto& l : split.finish()) if (!l.empty()) nodes.push_back(l);
  return nodes;
}

int slurm_slots_per_node(const Options& o) {
  if (o.num_gpus > 0) return o.num_gpus;
  long long v = 0;
  std::string tpn = env_or("SLURM_NTASKS_PER_NODE", "");
  tpn = tpn.substr(0, tpn.find_first_of("(,"));
  if (parse_int64(tpn, v) && v > 0) return static_cast<int>(v);
  if (parse_int64(env_or("SLURM_GPUS_ON_NODE", ""), v) && v > 0) return static_cast<int>(v);
  return 1;
}

Hostfile load_hosts(const Options& o, LauncherKind kind) {
  if (kind == LauncherKind::Slurm) {
    const std::string job = env_or("SLURM_JOB_ID", "");
    if (job.empty() && !(o.dry_run && !o.hostfile.empty()))
      throw InputError("--launcher slurm", "must run inside a Slurm allocation (SLURM_JOB_ID is not set)",
                       "start fmlaunch from an sbatch script or salloc; see scripts/sbatch/");
    std::vector<std::string> alloc = job.empty() ? std::vector<std::string>{} : slurm_allocation_nodes();
    if (!o.hostfile.empty()) {
      Hostfile hf = read_hostfile(o.hostfile);
      if (!alloc.empty()) {
        std::set<std::string> in_alloc(alloc.begin(), alloc.end());
        for (const auto& h : hf.hosts)
          if (!in_alloc.count(h.host))
            throw InputError(fmt::format("{}:{}", hf.path, h.line),
                             fmt::format("host '{}' is not a node of Slurm job {}", h.host, job),
                             fmt::format("the job's nodes are: {}", join(alloc, ", ")));
      }
      return hf;
    }
    if (alloc.empty())
      throw InputError("--launcher slurm", "the Slurm allocation lists no nodes (SLURM_JOB_NODELIST is empty)", "");
    Hostfile hf;
    hf.path = fmt::format("(Slurm job {})", job);
    const int slots = slurm_slots_per_node(o);
    for (const auto& n : alloc) {
      check_host(n, hf.path);
      hf.hosts.push_back({n, slots, 0});
    }
    return hf;
  }
  if (!o.hostfile.empty()) return read_hostfile(o.hostfile);
  if (o.num_nodes > 1)
    throw InputError("--num_nodes", fmt::format("asks for {} nodes but no hostfile was given", o.num_nodes),
                     "list the nodes in a hostfile (-H FILE)");
  Hostfile hf;
  hf.path = "(no hostfile: this machine)";
  hf.hosts.push_back({"localhost", o.num_gpus > 0 ? o.num_gpus : default_local_slots(), 0});
  return hf;
}

int host_line(const Hostfile& hf, const std::string& host) {
  for (const auto& h : hf.hosts)
    if (h.host == host) return h.line;
  return 0;
}

// Every host must accept a non-interactive ssh login before anything starts.
void preflight_ssh(const Hostfile& hf, const std::vector<NodeSlots>& nodes, int port,
                   const std::vector<std::string>& extra, const std::string& how) {
  std::vector<SpawnRequest> reqs;
  const std::vector<std::string> env = current_environment_block();
  for (const auto& n : nodes) {
    SpawnRequest r;
    r.argv = ssh_check_argv(n.host, port, extra, 5);
    r.env = env;
    reqs.push_back(std::move(r));
  }
  auto res = run_captured(reqs, 12.0);
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (res[i].status == 0) continue;
    std::string out = res[i].output;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    const int line = host_line(hf, nodes[i].host);
    throw InputError(line > 0 ? fmt::format("{}:{}", hf.path, line) : hf.path,
                     fmt::format("host '{}' is not reachable with ssh ({}): {}", nodes[i].host,
                                 res[i].status < 0 ? "timed out" : describe_status(res[i].status), out),
                     fmt::format("fmlaunch needs password-less ssh to every node; try `{}`{}", shell_join(reqs[i].argv), how));
  }
}

std::string hosts_summary(const std::vector<NodeSlots>& nodes) {
  std::vector<std::string> hs;
  for (const auto& n : nodes) hs.push_back(n.host);
  if (hs.size() > 8) hs.resize(8), hs.push_back("...");
  return join(hs, ", ");
}

void print_rank_lines(std::string& out, const World& world, const JobSpec& job, const std::vector<EnvVar>& extra,
                      const std::optional<std::string>& devices, const std::string& runtime) {
  for (const auto& r : world.all_ranks()) {
    std::vector<EnvVar> shown = rank_environment(world, r, job.rdzv, devices, job.device_visibility);
    for (const auto& v : extra) shown.push_back(v);
    out += fmt::format("{} {}\n", env_prefix(masked(shown)),
                       shell_join(container_wrap(runtime, job.container_args, job.container, job.program)));
  }
}

// The processes that reach the nodes, for one attempt. `exports`/`sources` are the real values,
// or masked ones for --dry_run; env_changes is what each sets on top of our own environment.
std::vector<NodeProcess> make_transports(LauncherKind kind, const JobSpec& job, const std::vector<EnvVar>& exports,
                                         const std::vector<EnvVar>& sources, const std::string& mpirun_hostfile) {
  std::vector<NodeProcess> procs;
  std::vector<int> all;
  for (int i = 0; i < static_cast<int>(job.nodes.size()); ++i) all.push_back(i);
  switch (kind) {
    case LauncherKind::Ssh:
      for (int i : all) {
        const auto& host = job.nodes[i].host;
        NodeProcess p;
        p.label = "ssh " + host;
        p.argv = ssh_argv(job, host, remote_command(job, exports, agent_argv(job, i, host)));
        p.nodes = {i};
        procs.push_back(std::move(p));
      }
      break;
    case LauncherKind::Pdsh: {
      NodeProcess p;
      p.label = "pdsh";
      p.argv = pdsh_argv(job, pdsh_remote_command(job, exports));
      p.nodes = all;
      p.stop_with_sigterm = true;
      const std::string ssh_args = pdsh_ssh_args(env_or("PDSH_SSH_ARGS_APPEND", ""), job.ssh_port);
      if (!ssh_args.empty()) p.env_changes = {{"PDSH_SSH_ARGS_APPEND", ssh_args}};
      procs.push_back(std::move(p));
      break;
    }
    case LauncherKind::Slurm: {
      NodeProcess p;
      p.label = "srun";
      p.argv = srun_argv(job);
      p.nodes = all;
      p.env_changes = sources;  // srun passes our whole environment on
      procs.push_back(std::move(p));
      break;
    }
    case LauncherKind::Mpirun: {
      NodeProcess p;
      p.label = "mpirun";
      p.env_changes = sources;
      p.env_changes.insert(p.env_changes.end(), {{"MASTER_ADDR", job.rdzv.master_addr},
                                                 {"MASTER_PORT", std::to_string(job.rdzv.master_port)},
                                                 {"FM_RESTART_COUNT", std::to_string(job.rdzv.restart_count)}});
      std::vector<std::string> names;
      for (const auto& v : exports) names.push_back(v.name);
      for (const char* n : {"MASTER_ADDR", "MASTER_PORT", "FM_RESTART_COUNT"}) names.push_back(n);
      p.argv = mpirun_argv(job, mpirun_hostfile, names, geteuid() == 0);
      p.nodes = all;
      p.stop_with_sigterm = true;
      procs.push_back(std::move(p));
      break;
    }
    case LauncherKind::Local:
      break;
  }
  return procs;
}

}  // namespace

int run_launcher(const Options& o) {
  const LauncherKind kind = choose_launcher(o);
  if (!o.dry_run) {
    if (kind == LauncherKind::Ssh) require_tool("ssh", kind);
    if (kind == LauncherKind::Pdsh) require_tool("pdsh", kind), require_tool("ssh", kind);
    if (kind == LauncherKind::Slurm) require_tool("srun", kind);
    if (kind == LauncherKind::Mpirun) require_tool("mpirun", kind);
  }
  if (o.ssh_port > 0 && kind != LauncherKind::Ssh && kind != LauncherKind::Pdsh)
    throw InputError("--ssh_port", fmt::format("does not apply to the {} launcher", launcher_name(kind)),
                     "it is used by --launcher ssh and --launcher pdsh");

  const Hostfile hf = load_hosts(o, kind);
  const std::vector<NodeSlots> nodes =
      select_resources(hf, Selection{o.include, o.exclude, o.num_nodes, o.num_gpus});
  World world(nodes);
  if (kind == LauncherKind::Mpirun)
    for (const auto& n : nodes)
      for (size_t i = 0; i < n.slots.size(); ++i)
        if (n.slots[i] != static_cast<int>(i))
          throw InputError(!o.include.empty() ? "--include" : "--exclude",
                           fmt::format("picks slots {} on host '{}', but mpirun places ranks by count only",
                                       format_slot_list(n.slots), n.host),
                           "select whole hosts, or use --num_gpus / hostfile slots, with --launcher mpirun");

  const std::vector<EnvVar> sources = read_env_sources(o, /*default_file=*/true);  // env file + --env
  const std::vector<EnvVar> exports = collect_exports(default_exports(current_environment()), {}, sources);
  const std::vector<std::string> env_now = current_environment_block();

  JobSpec job;
  job.fmlaunch = this_executable();
  job.nodes = nodes;
  job.rdzv.master_addr =
      !o.master_addr.empty() ? o.master_addr : (kind == LauncherKind::Local ? "127.0.0.1" : nodes.front().host);
  job.rdzv.master_port = o.master_port;
  job.grace_period = o.grace_period;
  job.device_visibility = o.device_visibility;
  job.log_dir = o.log_dir.empty() ? "" : std::filesystem::absolute(o.log_dir).lexically_normal().string();
  job.container = o.container;
  job.container_runtime = o.container_runtime;
  job.container_args = o.container_args;
  job.program = o.program;
  job.cwd = std::filesystem::current_path().string();
  job.launcher_args = o.launcher_args;
  job.ssh_port = o.ssh_port;

  // Local ranks (and mpirun's) start here: check what can be checked here.
  std::string local_runtime;
  if (kind == LauncherKind::Local || kind == LauncherKind::Mpirun) {
    if (!o.container.empty()) {
      local_runtime = o.dry_run ? (o.container_runtime.empty() ? detect_container_runtime(env_or("PATH", "")) : o.container_runtime)
                                : resolve_container_runtime(o, local_host_name());
      if (local_runtime.empty()) local_runtime = "apptainer";
      job.container_runtime = local_runtime;
    } else if (kind == LauncherKind::Local) {
      std::vector<std::string> env = env_now;
      apply_env(env, sources);
      const char* path = find_env(env, "PATH");
      if (find_executable(o.program[0], path ? path : "").empty())
        throw InputError("PROGRAM", fmt::format("'{}' is not an executable program", o.program[0]),
                         o.program[0].find('/') == std::string::npos ? "it was looked up in PATH; give a path or fix PATH"
                                                                     : "check the path");
    }
  }
  const std::string mpirun_hostfile =
      fmt::format("{}/fmlaunch-hostfile-{}", env_or("TMPDIR", "/tmp"), static_cast<long>(getpid()));
  std::optional<std::string> local_devices;
  if (const char* cvd = std::getenv("CUDA_VISIBLE_DEVICES")) local_devices = cvd;

  if (o.dry_run) {
    std::string out = fmt::format("# fmlaunch --dry_run: {} launcher, {} node(s), world size {}, master {}:{}\n",
                                  launcher_name(kind), world.num_nodes(), world.world_size(), job.rdzv.master_addr,
                                  job.rdzv.master_port);
    for (int i = 0; i < world.num_nodes(); ++i) {
      auto rs = world.ranks_of_node(i);
      out += fmt::format("# node {}: {} ranks {}-{} slots {}\n", i, world.node(i).host, rs.front().rank, rs.back().rank,
                         format_slot_list(world.node(i).slots));
    }
    const std::string runtime = job.container_runtime.empty() ? "apptainer" : job.container_runtime;
    if (kind == LauncherKind::Local) {
      out += "# ranks (each in its own process group):\n";
      print_rank_lines(out, world, job, masked(sources), local_devices, runtime);
    } else {
      if (kind == LauncherKind::Mpirun) {
        out += fmt::format("# mpirun hostfile {}:\n", mpirun_hostfile);
        for (const auto& n : nodes) out += fmt::format("#   {} x{}\n", n.host, n.slots.size());
      }
      out += fmt::format("# {}:\n", kind == LauncherKind::Ssh      ? "one ssh per node"
                                     : kind == LauncherKind::Pdsh   ? "one pdsh for all nodes"
                                     : kind == LauncherKind::Slurm  ? "one srun for all nodes, one agent per node"
                                                                    : "one mpirun for all ranks (Open MPI sets OMPI_COMM_WORLD_*)");
      for (const auto& p : make_transports(kind, job, masked(exports), masked(sources), mpirun_hostfile))
        out += (p.env_changes.empty() ? "" : env_prefix(p.env_changes) + " ") + shell_join(p.argv) + "\n";
      if (kind != LauncherKind::Mpirun) {
        out += "# ranks each node's agent starts (CUDA_VISIBLE_DEVICES from the node's own list when it has one):\n";
        print_rank_lines(out, world, job, {}, std::nullopt, runtime);
      }
    }
    write_all(1, out);
    return 0;
  }

  if (kind == LauncherKind::Ssh) preflight_ssh(hf, nodes, o.ssh_port, o.launcher_args, ", --ssh_port, --launcher_args");
  if (kind == LauncherKind::Pdsh)
    preflight_ssh(hf, nodes, o.ssh_port, shell_split(env_or("PDSH_SSH_ARGS_APPEND", ""), "PDSH_SSH_ARGS_APPEND"),
                  ", PDSH_SSH_ARGS_APPEND, --ssh_port");

  say(fmt::format("{} launcher, {} node(s) ({}), world size {}, master {}:{}", launcher_name(kind), world.num_nodes(),
                  hosts_summary(nodes), world.world_size(), job.rdzv.master_addr, job.rdzv.master_port));
  if (!sources.empty()) say("setting for every rank: " + env_prefix(masked(sources)));
  const int sfd = install_signal_fd();

  if (kind == LauncherKind::Local) {
    std::vector<std::string> base = env_now;
    apply_env(base, sources);
    GroupOptions g;
    g.log_dir = job.log_dir;
    g.grace_period = o.grace_period;
    return run_with_restarts(0, o.max_restarts, true, [&](int attempt) {
      job.rdzv.restart_count = attempt;
      std::vector<RankLaunch> ranks;
      for (const auto& p : world.all_ranks()) {
        RankLaunch r;
        r.place = p;
        r.host = world.node(p.node_rank).host;
        r.argv = container_wrap(local_runtime, o.container_args, o.container, o.program);
        r.env = base;
        apply_env(r.env, rank_environment(world, p, job.rdzv, local_devices, job.device_visibility));
        ranks.push_back(std::move(r));
      }
      g.restart_count = attempt;
      return run_rank_group(ranks, g, sfd);
    });
  }

  FanoutOptions f;
  f.grace_period = o.grace_period;
  f.heartbeat_timeout = o.heartbeat_timeout;
  f.first_heartbeat_timeout = std::max(60.0, o.heartbeat_timeout);
  for (const auto& n : nodes) f.node_hosts.push_back(n.host);
  if (kind == LauncherKind::Mpirun) {
    f.agents = false;
    f.mpirun_tags = true;
    f.log_dir = job.log_dir;
    std::ofstream(mpirun_hostfile) << mpirun_hostfile_text(job);
  }
  const int code = run_with_restarts(0, o.max_restarts, true, [&](int attempt) {
    job.rdzv.restart_count = attempt;
    f.restart_count = attempt;
    auto procs = make_transports(kind, job, exports, sources, mpirun_hostfile);
    for (auto& p : procs) {
      p.env = env_now;
      apply_env(p.env, p.env_changes);
    }
    return run_fanout(procs, f, sfd);
  });
  if (kind == LauncherKind::Mpirun) std::filesystem::remove(mpirun_hostfile);
  return code;
}

}  // namespace fm::launcher
