#include "launcher/commands.h"

#include <fmt/format.h>

#include "launcher/process.h"
#include "launcher/shell.h"

namespace fm::launcher {
namespace {

const char kHostToken[] = "\x01host\x01";  // stands for pdsh's %h until the '%' are escaped

std::string join_hosts(const std::vector<NodeSlots>& nodes) {
  std::string out;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (i) out += ',';
    out += nodes[i].host;
  }
  return out;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
}

}  // namespace

std::vector<std::string> agent_argv(const JobSpec& job, std::optional<int> node, const std::string& host_label) {
  World world(job.nodes);
  std::vector<std::string> a = {job.fmlaunch};
  if (world.is_uniform()) {
    a.insert(a.end(), {"--nnodes", std::to_string(world.num_nodes()), "--nproc_per_node",
                       std::to_string(world.node(0).slots.size())});
  } else {
    a.insert(a.end(), {"--world_slots", format_world_slots(world)});
  }
  if (node) {
    a.insert(a.end(), {"--node_rank", std::to_string(*node)});
  } else {
    a.insert(a.end(), {"--world_hosts", join_hosts(job.nodes)});
  }
  if (!host_label.empty()) a.insert(a.end(), {"--host_label", host_label});
  a.insert(a.end(), {"--master_addr", job.rdzv.master_addr, "--master_port", std::to_string(job.rdzv.master_port)});
  a.insert(a.end(), {"--grace_period", fmt::format("{:g}", job.grace_period)});
  if (job.rdzv.restart_count > 0) a.insert(a.end(), {"--restart_count", std::to_string(job.rdzv.restart_count)});
  if (!job.log_dir.empty()) a.insert(a.end(), {"--log_dir", job.log_dir});
  if (job.device_visibility != DeviceVisibility::Rank)
    a.insert(a.end(), {"--cuda_visible_devices", device_visibility_name(job.device_visibility)});
  if (!job.container.empty()) {
    a.insert(a.end(), {"--container", job.container});
    if (!job.container_runtime.empty()) a.insert(a.end(), {"--container_runtime", job.container_runtime});
    if (!job.container_args.empty()) a.insert(a.end(), {"--container_args", shell_join(job.container_args)});
  }
  a.push_back("--control");
  a.push_back("--");
  a.insert(a.end(), job.program.begin(), job.program.end());
  return a;
}

std::string env_prefix(const std::vector<EnvVar>& vars) {
  std::string out;
  for (size_t i = 0; i < vars.size(); ++i) out += fmt::format("{}{}={}", i ? " " : "", vars[i].name, shell_quote(vars[i].value));
  return out;
}

std::string remote_command(const JobSpec& job, const std::vector<EnvVar>& exports, const std::vector<std::string>& agent) {
  std::string cmd = "cd " + shell_quote(job.cwd);
  if (!exports.empty()) cmd += " && export " + env_prefix(exports);
  cmd += " && exec " + shell_join(agent);
  return cmd;
}

std::vector<std::string> ssh_argv(const JobSpec& job, const std::string& host, const std::string& remote) {
  std::vector<std::string> a = {"ssh", "-o", "BatchMode=yes"};
  if (job.ssh_port > 0) a.insert(a.end(), {"-p", std::to_string(job.ssh_port)});
  a.insert(a.end(), job.launcher_args.begin(), job.launcher_args.end());
  a.push_back(host);
  a.push_back(remote);
  return a;
}

std::vector<std::string> ssh_check_argv(const std::string& host, int port, const std::vector<std::string>& extra,
                                        int timeout_s) {
  std::vector<std::string> a = {"ssh", "-o", "BatchMode=yes", "-o", fmt::format("ConnectTimeout={}", timeout_s)};
  if (port > 0) a.insert(a.end(), {"-p", std::to_string(port)});
  a.insert(a.end(), extra.begin(), extra.end());
  a.push_back(host);
  a.push_back("true");
  return a;
}

std::string pdsh_remote_command(const JobSpec& job, const std::vector<EnvVar>& exports) {
  std::string cmd = remote_command(job, exports, agent_argv(job, std::nullopt, kHostToken));
  replace_all(cmd, "%", "%%");
  replace_all(cmd, shell_quote(kHostToken), "%h");
  return cmd;
}

std::vector<std::string> pdsh_argv(const JobSpec& job, const std::string& remote) {
  // Every node must run at once (the ranks wait for each other): the fan-out covers all of them.
  const size_t fanout = std::max<size_t>(1024, job.nodes.size());
  std::vector<std::string> a = {"pdsh", "-S", "-N", "-R", "ssh", "-f", std::to_string(fanout), "-w", join_hosts(job.nodes)};
  a.insert(a.end(), job.launcher_args.begin(), job.launcher_args.end());
  a.push_back(remote);
  return a;
}

std::string pdsh_ssh_args(const std::string& inherited, int ssh_port) {
  std::string out = inherited;
  if (ssh_port > 0) out += fmt::format("{}-p {}", out.empty() ? "" : " ", ssh_port);
  return out;
}

std::vector<std::string> srun_argv(const JobSpec& job) {
  const std::string n = std::to_string(job.nodes.size());
  std::vector<std::string> a = {"srun", "--nodes=" + n, "--ntasks=" + n, "--ntasks-per-node=1",
                                "--nodelist=" + join_hosts(job.nodes), "--kill-on-bad-exit=1", "--input=all"};
  a.insert(a.end(), job.launcher_args.begin(), job.launcher_args.end());
  auto agent = agent_argv(job, std::nullopt, "");
  a.insert(a.end(), agent.begin(), agent.end());
  return a;
}

std::string mpirun_hostfile_text(const JobSpec& job) {
  std::string out;
  for (const auto& n : job.nodes)
    for (size_t i = 0; i < n.slots.size(); ++i) out += n.host + "\n";
  return out;
}

std::vector<std::string> mpirun_argv(const JobSpec& job, const std::string& hostfile_path,
                                     const std::vector<std::string>& exported_names, bool as_root) {
  World world(job.nodes);
  std::vector<std::string> a = {"mpirun", "-np", std::to_string(world.world_size()), "--hostfile", hostfile_path,
                                "--map-by", "slot", "--tag-output"};
  if (as_root) a.push_back("--allow-run-as-root");
  for (const auto& name : exported_names) a.insert(a.end(), {"-x", name});
  a.insert(a.end(), job.launcher_args.begin(), job.launcher_args.end());
  const std::string runtime = job.container_runtime.empty() ? "apptainer" : job.container_runtime;
  auto prog = container_wrap(runtime, job.container_args, job.container, job.program);
  a.insert(a.end(), prog.begin(), prog.end());
  return a;
}

std::vector<std::string> container_wrap(const std::string& runtime, const std::vector<std::string>& container_args,
                                        const std::string& image, const std::vector<std::string>& program) {
  if (image.empty()) return program;
  std::vector<std::string> a = {runtime, "exec", "--nv"};
  a.insert(a.end(), container_args.begin(), container_args.end());
  a.push_back(image);
  a.insert(a.end(), program.begin(), program.end());
  return a;
}

std::string detect_container_runtime(const std::string& path_env) {
  for (const char* name : {"apptainer", "singularity"})
    if (!find_executable(name, path_env).empty()) return name;
  return "";
}

}  // namespace fm::launcher
