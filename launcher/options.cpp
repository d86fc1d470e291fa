#include "launcher/options.h"

#include <fmt/format.h>

#include <functional>
#include <map>

#include "launcher/hostfile.h"
#include "launcher/shell.h"
#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::launcher {
namespace {

enum class Form { Both, Launcher, Agent };

struct Spec {
  const char* name;  // canonical, with '_'
  bool takes_value;
  Form form;
  bool internal;  // used between fmlaunch processes; not in --help
};

const Spec kSpecs[] = {
    {"hostfile", true, Form::Launcher, false},     {"include", true, Form::Launcher, false},
    {"exclude", true, Form::Launcher, false},      {"num_nodes", true, Form::Launcher, false},
    {"num_gpus", true, Form::Launcher, false},     {"launcher", true, Form::Launcher, false},
    {"launcher_args", true, Form::Launcher, false}, {"ssh_port", true, Form::Launcher, false},
    {"env", true, Form::Both, false},              {"env_file", true, Form::Both, false},
    {"heartbeat_timeout", true, Form::Launcher, false},
    {"master_addr", true, Form::Both, false},      {"master_port", true, Form::Both, false},
    {"container", true, Form::Both, false},        {"container_runtime", true, Form::Both, false},
    {"container_args", true, Form::Both, false},   {"log_dir", true, Form::Both, false},
    {"cuda_visible_devices", true, Form::Both, false},
    {"dry_run", false, Form::Both, false},         {"max_restarts", true, Form::Both, false},
    {"grace_period", true, Form::Both, false},     {"nnodes", true, Form::Agent, false},
    {"node_rank", true, Form::Agent, false},       {"nproc_per_node", true, Form::Agent, false},
    {"rdzv_endpoint", true, Form::Agent, false},   {"rdzv_backend", true, Form::Agent, false},
    {"rdzv_id", true, Form::Agent, false},         {"world_slots", true, Form::Agent, true},
    {"world_hosts", true, Form::Agent, true},      {"host_label", true, Form::Agent, true},
    {"control", false, Form::Agent, true},         {"restart_count", true, Form::Agent, true},
    {"help", false, Form::Both, false},            {"version", false, Form::Both, false},
};

const Spec* find_spec(const std::string& name) {
  for (const auto& s : kSpecs)
    if (name == s.name) return &s;
  return nullptr;
}

std::vector<std::string> spec_names() {
  std::vector<std::string> out;
  for (const auto& s : kSpecs)
    if (!s.internal) out.push_back(std::string("--") + s.name);
  return out;
}

int parse_count(const std::string& flag, const std::string& value, long long lo, long long hi) {
  long long v = 0;
  if (!parse_int64(value, v) || v < lo || v > hi)
    throw InputError(flag, fmt::format("expects an integer in [{}, {}], got '{}'", lo, hi, value), "");
  return static_cast<int>(v);
}

LauncherKind parse_launcher(const std::string& value) {
  static const std::map<std::string, LauncherKind> kinds = {{"local", LauncherKind::Local},
                                                            {"ssh", LauncherKind::Ssh},
                                                            {"pdsh", LauncherKind::Pdsh},
                                                            {"slurm", LauncherKind::Slurm},
                                                            {"mpirun", LauncherKind::Mpirun}};
  auto it = kinds.find(value);
  if (it != kinds.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [n, k] : kinds) names.push_back(n);
  if (value == "openmpi") return LauncherKind::Mpirun;
  throw InputError("--launcher", fmt::format("unknown launcher '{}'", value), suggestion_hint(value, names));
}

}  // namespace

const char* launcher_name(LauncherKind kind) {
  switch (kind) {
    case LauncherKind::Local: return "local";
    case LauncherKind::Ssh: return "ssh";
    case LauncherKind::Pdsh: return "pdsh";
    case LauncherKind::Slurm: return "slurm";
    case LauncherKind::Mpirun: return "mpirun";
  }
  return "?";
}

Options parse_options(const std::vector<std::string>& args) {
  Options o;
  std::map<std::string, std::string> seen_form;  // canonical name -> spelling used (for messages)
  bool any_launcher_only = false;
  std::string first_launcher_only, first_agent_only;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a.size() < 2 || a[0] != '-') break;  // PROGRAM
    std::string name, value;
    bool has_inline_value = false;
    if (a[1] != '-') {
      // Short options: -H FILE, -i S, -e S, -h.
      static const std::map<char, std::string> shorts = {{'H', "hostfile"}, {'i', "include"}, {'e', "exclude"},
                                                         {'h', "help"}};
      auto it = shorts.find(a[1]);
      if (it == shorts.end())
        throw InputError(a, "unknown option", "see fmlaunch --help; the program and its arguments come after the options");
      name = it->second;
      if (a.size() > 2) value = a.substr(2), has_inline_value = true;
    } else {
      std::string body = a.substr(2);
      size_t eq = body.find('=');
      if (eq != std::string::npos) {
        value = body.substr(eq + 1);
        body = body.substr(0, eq);
        has_inline_value = true;
      }
      for (char& c : body)
        if (c == '-') c = '_';
      name = body;
    }
    const Spec* spec = find_spec(name);
    const std::string flag = a.rfind("--", 0) == 0 ? "--" + name : a.substr(0, 2);
    if (!spec)
      throw InputError(a.substr(0, a.find('=')), "unknown option",
                       suggestion_hint("--" + name, spec_names()) +
                           "; the program and its arguments come after the options");
    if (spec->takes_value && !has_inline_value) {
      if (i + 1 >= args.size()) throw InputError(flag, "needs a value", "");
      value = args[++i];
    } else if (!spec->takes_value && has_inline_value) {
      throw InputError(flag, "takes no value", "");
    }
    if (spec->form == Form::Launcher) {
      any_launcher_only = true;
      if (first_launcher_only.empty()) first_launcher_only = flag;
    }
    if (spec->form == Form::Agent && first_agent_only.empty() && name != "rdzv_backend" && name != "rdzv_id")
      first_agent_only = flag;
    if (name != "env" && seen_form.count(name))
      throw InputError(flag, "is given twice", "give each option once");
    seen_form[name] = flag;

    auto need_nonempty = [&] {
      if (value.empty()) throw InputError(flag, "is empty", "");
    };
    if (name == "hostfile") need_nonempty(), o.hostfile = value;
    else if (name == "include") need_nonempty(), o.include = value;
    else if (name == "exclude") need_nonempty(), o.exclude = value;
    else if (name == "num_nodes") o.num_nodes = parse_count(flag, value, 1, 1 << 20);
    else if (name == "num_gpus") o.num_gpus = parse_count(flag, value, 1, 1 << 16);
    else if (name == "launcher") o.launcher = parse_launcher(value);
    else if (name == "launcher_args") o.launcher_args = shell_split(value, flag);
    else if (name == "ssh_port") o.ssh_port = parse_count(flag, value, 1, 65535);
    else if (name == "env") o.env.push_back(parse_env_assignment(value, flag));
    else if (name == "env_file") need_nonempty(), o.env_file = value;
    else if (name == "master_addr") check_host(value, flag), o.master_addr = value;
    else if (name == "master_port") o.master_port = parse_count(flag, value, 1, 65535);
    else if (name == "container") need_nonempty(), o.container = value;
    else if (name == "container_runtime") {
      if (value != "apptainer" && value != "singularity")
        throw InputError(flag, fmt::format("unknown container runtime '{}'", value),
                         suggestion_hint(value, {"apptainer", "singularity"}));
      o.container_runtime = value;
    } else if (name == "container_args") o.container_args = shell_split(value, flag);
    else if (name == "log_dir") need_nonempty(), o.log_dir = value;
    else if (name == "cuda_visible_devices") {
      if (value == "rank") o.device_visibility = DeviceVisibility::Rank;
      else if (value == "node") o.device_visibility = DeviceVisibility::Node;
      else if (value == "inherit") o.device_visibility = DeviceVisibility::Inherit;
      else
        throw InputError(flag, fmt::format("unknown device view '{}'", value),
                         suggestion_hint(value, {"rank", "node", "inherit"}));
    }
    else if (name == "dry_run") o.dry_run = true;
    else if (name == "max_restarts") o.max_restarts = parse_count(flag, value, 0, 1000);
    else if (name == "grace_period") {
      double g = 0;
      if (!parse_double(value, g) || g < 0 || g > 3600)
        throw InputError(flag, fmt::format("expects seconds in [0, 3600], got '{}'", value), "");
      o.grace_period = g;
    } else if (name == "heartbeat_timeout") {
      double t = 0;
      if (!parse_double(value, t) || t < 1 || t > 86400)
        throw InputError(flag, fmt::format("expects seconds in [1, 86400], got '{}'", value), "");
      o.heartbeat_timeout = t;
    } else if (name == "nnodes") {
      if (value.find(':') != std::string::npos)
        throw InputError(flag, fmt::format("elastic ranges ('{}') are not supported", value),
                         "give a fixed node count, e.g. --nnodes 2");
      o.nnodes = parse_count(flag, value, 1, 1 << 20);
    } else if (name == "node_rank") o.node_rank = parse_count(flag, value, 0, 1 << 20);
    else if (name == "nproc_per_node") o.nproc_per_node = parse_count(flag, value, 1, 1 << 16);
    else if (name == "rdzv_endpoint") {
      size_t colon = value.rfind(':');
      std::string host = value, port;
      if (colon != std::string::npos && value.find(':') == colon) host = value.substr(0, colon), port = value.substr(colon + 1);
      if (!host.empty() && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
      check_host(host, flag);
      o.master_addr = host;
      if (!port.empty()) o.master_port = parse_count(flag, port, 1, 65535);
    } else if (name == "rdzv_backend") {
      if (value != "static" && value != "c10d")
        throw InputError(flag, fmt::format("unsupported rendezvous backend '{}'", value),
                         "fmlaunch uses a static rendezvous (MASTER_ADDR:MASTER_PORT); 'c10d' and 'static' are accepted");
    } else if (name == "rdzv_id") {
      // Accepted for torchrun compatibility; a static world needs no run id.
    } else if (name == "world_slots") need_nonempty(), o.world_slots = value;
    else if (name == "world_hosts") need_nonempty(), o.world_hosts = value;
    else if (name == "host_label") need_nonempty(), o.host_label = value;
    else if (name == "control") o.control = true;
    else if (name == "restart_count") o.restart_count = parse_count(flag, value, 0, 1000);
    else if (name == "help") o.help = true;
    else if (name == "version") o.version = true;
  }
  for (; i < args.size(); ++i) o.program.push_back(args[i]);

  o.agent = !first_agent_only.empty();
  if (o.agent && any_launcher_only)
    throw InputError(first_launcher_only,
                     fmt::format("cannot be combined with {} (which starts a per-node agent)", first_agent_only),
                     "the launcher form takes a hostfile; the agent form (--nnodes/--node_rank/--nproc_per_node) "
                     "runs the ranks of one node");
  if (o.help || o.version) return o;
  if (o.program.empty())
    throw InputError("PROGRAM", "no program to launch was given", "usage: fmlaunch [options] PROGRAM [ARGS...]");
  if (o.agent) {
    if (!o.world_slots.empty() && (o.nnodes >= 0 || o.nproc_per_node >= 0))
      throw InputError("--world_slots", "cannot be combined with --nnodes/--nproc_per_node", "");
    if (o.world_slots.empty() && o.nproc_per_node < 0) o.nproc_per_node = 1;
    if (o.world_slots.empty() && o.nnodes < 0) o.nnodes = 1;
  }
  return o;
}

std::string usage_text() {
  return R"(usage: fmlaunch [options] PROGRAM [ARGS...]
       fmlaunch --nnodes N --node_rank I --nproc_per_node G --master_addr A --master_port P PROGRAM [ARGS...]

Starts the ranks of a distributed job and stops all of them when one fails.

Job options:
  -H, --hostfile FILE      lines 'HOST slots=N' (# comments); without it, one local node
  -i, --include SPEC       only these hosts/slots: host[:slot,slot][@host...]
  -e, --exclude SPEC       all but these hosts/slots
  --num_nodes N            the first N hosts of the hostfile
  --num_gpus G             G processes per node (slots 0..G-1)
  --launcher KIND          local | ssh | pdsh | slurm | mpirun (default: local without a hostfile,
                           else pdsh when installed, else ssh)
  --launcher_args "..."    extra arguments for ssh / pdsh / srun / mpirun (split like a shell)
  --ssh_port PORT          ssh port of the nodes
  --env KEY=VALUE          export a variable to every rank (repeatable)
  --env_file FILE          KEY=VALUE lines to export (default: ./.fmenv when it exists)
  --heartbeat_timeout S    a node agent silent for S seconds counts as failed (default 30)
Both forms:
  --master_addr ADDR       rendezvous host (default: the first node)
  --master_port PORT       rendezvous port (default 29500)
  --container IMAGE        run each rank as 'apptainer exec --nv IMAGE PROGRAM ARGS'
  --container_runtime R    apptainer | singularity (default: whichever is installed)
  --container_args "..."   extra arguments after 'exec' (e.g. "--bind /data")
  --log_dir DIR            one log per rank: DIR/rank_<R>.log
  --cuda_visible_devices V rank: one device per rank (default); node: all the node's devices
                           (ranks pick LOCAL_RANK); inherit: leave CUDA_VISIBLE_DEVICES alone
  --dry_run                print the exact commands and environments, start nothing
  --max_restarts N         restart the whole job up to N times after a failure (default 0)
  --grace_period SECONDS   SIGTERM -> SIGKILL delay when stopping ranks (default 5)
Agent form (torchrun-compatible; '-' or '_' spellings):
  --nnodes N  --node_rank I  --nproc_per_node G  --rdzv_endpoint HOST:PORT
)";
}

}  // namespace fm::launcher
