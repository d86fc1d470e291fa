// Unit tests of fmlaunch's pure parts: quoting, hostfiles, selection, env files, options, the
// world layout, command lines and the control protocol.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "launcher/commands.h"
#include "launcher/control.h"
#include "launcher/env_export.h"
#include "launcher/hostfile.h"
#include "launcher/options.h"
#include "launcher/resources.h"
#include "launcher/shell.h"
#include "launcher/world.h"
#include "runtime/base/error.h"

using namespace fm::launcher;
using fm::InputError;

namespace {

const std::vector<std::string> kNastyWords = {
    "plain", "a b", "it's", "\"dq\"", "$HOME", "`id`", "$(id)", "line1\nline2", "x;y", "", "*", "~", "=x",
    "%h %n %%", "back\\slash", "-n", "tab\there", "'", "''", "\\'", "semi;colon&amp|pipe>out<in", "!bang"};

// Runs `shell -c 'printf "%s\0" WORDS'` and returns the words the shell saw.
std::vector<std::string> through_shell(const std::string& shell, const std::vector<std::string>& words) {
  const std::string cmd = "printf '%s\\0' " + shell_join(words);
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    execl(shell.c_str(), shell.c_str(), "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  REQUIRE(WIFEXITED(st));
  REQUIRE(WEXITSTATUS(st) == 0);
  std::vector<std::string> got;
  size_t start = 0;
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i] == '\0') got.push_back(out.substr(start, i - start)), start = i + 1;
  return got;
}

template <typename F>
std::string input_error_where(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.where();
  }
  return "<no error>";
}

template <typename F>
std::string input_error_text(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "<no error>";
}

Options parse(std::vector<std::string> args) { return parse_options(args); }

}  // namespace

TEST_CASE("shell_quote: safe words stay as they are, others survive a real shell unchanged") {
  CHECK(shell_quote("abc-1.2_x/y:z@w,v+u") == "abc-1.2_x/y:z@w,v+u");
  CHECK(shell_quote("") == "''");
  CHECK(shell_quote("a b") == "'a b'");
  CHECK(shell_quote("it's") == "'it'\\''s'");
  for (const char* sh : {"/bin/sh", "/bin/bash", "/bin/dash"}) {
    if (access(sh, X_OK) != 0) continue;
    CAPTURE(sh);
    CHECK(through_shell(sh, kNastyWords) == kNastyWords);
  }
}

TEST_CASE("shell_split follows POSIX shell word rules") {
  CHECK(shell_split("a \"b c\" 'd e' f\\ g", "x") == std::vector<std::string>{"a", "b c", "d e", "f g"});
  CHECK(shell_split("\"a\\\"b\" 'a\\b' \"$x\"", "x") == std::vector<std::string>{"a\"b", "a\\b", "$x"});
  CHECK(shell_split("  -p 2222\t-i key  ", "x") == std::vector<std::string>{"-p", "2222", "-i", "key"});
  CHECK(shell_split("''", "x") == std::vector<std::string>{""});
  CHECK(shell_split("", "x").empty());
  CHECK(input_error_where([] { shell_split("a 'b", "--launcher_args"); }) == "--launcher_args");
  CHECK(input_error_where([] { shell_split("a \"b", "--launcher_args"); }) == "--launcher_args");
  // Splitting what shell_join produced gives the words back.
  CHECK(shell_split(shell_join(kNastyWords), "x") == kNastyWords);
}

TEST_CASE("hostfile: hosts in order, comments and blank lines skipped") {
  Hostfile hf = parse_hostfile("# cluster\n\nnode01 slots=8  # first\n  node02\tslots=4\n10.0.0.3 slots=1\n::1 slots=2\n",
                               "hosts.txt");
  REQUIRE(hf.hosts.size() == 4);
  CHECK(hf.hosts[0].host == "node01");
  CHECK(hf.hosts[0].slots == 8);
  CHECK(hf.hosts[0].line == 3);
  CHECK(hf.hosts[1].host == "node02");
  CHECK(hf.hosts[1].slots == 4);
  CHECK(hf.hosts[2].host == "10.0.0.3");
  CHECK(hf.hosts[3].host == "::1");
}

TEST_CASE("hostfile: every mistake names file:line") {
  CHECK(input_error_where([] { parse_hostfile("a slots=1\nb slots=0\n", "hf"); }) == "hf:2");
  CHECK(input_error_text([] { parse_hostfile("a slots=1\nb slots=0\n", "hf"); }).find("zero slots") != std::string::npos);
  CHECK(input_error_where([] { parse_hostfile("a slots=1\n\na slots=2\n", "hf"); }) == "hf:3");
  CHECK(input_error_text([] { parse_hostfile("a slots=1\n\na slots=2\n", "hf"); }).find("first at line 1") !=
        std::string::npos);
  CHECK(input_error_where([] { parse_hostfile("a slots=1\nb\n", "hf"); }) == "hf:2");
  CHECK(input_error_where([] { parse_hostfile("a slot=1\n", "hf"); }) == "hf:1");
  CHECK(input_error_where([] { parse_hostfile("a slots=x\n", "hf"); }) == "hf:1");
  CHECK(input_error_where([] { parse_hostfile("a slots=-1\n", "hf"); }) == "hf:1");
  CHECK(input_error_where([] { parse_hostfile("a slots=1 extra\n", "hf"); }) == "hf:1");
  CHECK(input_error_where([] { parse_hostfile("a;rm slots=1\n", "hf"); }) == "hf:1");
  CHECK(input_error_where([] { parse_hostfile("-oProxyCommand=x slots=1\n", "hf"); }) == "hf:1");
  CHECK(input_error_where([] { parse_hostfile("$(id) slots=1\n", "hf"); }) == "hf:1");
  CHECK(input_error_where([] { parse_hostfile("# nothing\n\n", "hf"); }) == "hf");
}

TEST_CASE("host names: plain names and addresses only") {
  for (const char* ok : {"node-01", "a.b.c", "10.1.2.3", "fe80::1", "::1", "n_1"}) CHECK(is_valid_host(ok));
  for (const char* bad : {"", "-x", ".x", "a b", "a;b", "a|b", "a`b`", "a$b", "a'b", "n[1-2]", "a/b", "a\nb"})
    CHECK_FALSE(is_valid_host(bad));
}

TEST_CASE("selection: include, exclude, counts") {
  const Hostfile hf = parse_hostfile("a slots=4\nb slots=2\nc slots=2\n", "hf");
  auto sel = [&](Selection s) { return select_resources(hf, s); };
  auto all = sel({});
  REQUIRE(all.size() == 3);
  CHECK(all[0].slots == std::vector<int>{0, 1, 2, 3});

  auto inc = sel({"c@a:1,3", "", -1, -1});
  REQUIRE(inc.size() == 2);  // hostfile order, not filter order
  CHECK(inc[0].host == "a");
  CHECK(inc[0].slots == std::vector<int>{1, 3});
  CHECK(inc[1].host == "c");
  CHECK(inc[1].slots == std::vector<int>{0, 1});

  auto exc = sel({"", "b@a:0", -1, -1});
  REQUIRE(exc.size() == 2);
  CHECK(exc[0].slots == std::vector<int>{1, 2, 3});
  CHECK(exc[1].host == "c");

  auto counts = sel({"", "", 2, 2});
  REQUIRE(counts.size() == 2);
  CHECK(counts[0].slots == std::vector<int>{0, 1});
  CHECK(counts[1].slots == std::vector<int>{0, 1});
}

TEST_CASE("selection: mistakes name the option") {
  const Hostfile hf = parse_hostfile("node01 slots=2\nnode02 slots=2\n", "hf");
  auto sel = [&](Selection s) { return [&hf, s] { select_resources(hf, s); }; };
  CHECK(input_error_where(sel({"node03", "", -1, -1})) == "--include");
  CHECK(input_error_text(sel({"node03", "", -1, -1})).find("not in the hostfile") != std::string::npos);
  CHECK(input_error_text(sel({"node0l", "", -1, -1})).find("did you mean") != std::string::npos);
  CHECK(input_error_where(sel({"", "node01:5", -1, -1})) == "--exclude");
  CHECK(input_error_text(sel({"", "node01:5", -1, -1})).find("no slot 5") != std::string::npos);
  CHECK(input_error_where(sel({"node01", "node02", -1, -1})) == "--include");
  CHECK(input_error_where(sel({"node01", "", 1, -1})) == "--num_nodes");
  CHECK(input_error_where(sel({"", "node01", -1, 1})) == "--num_gpus");
  CHECK(input_error_where(sel({"", "", 3, -1})) == "--num_nodes");
  CHECK(input_error_where(sel({"", "", -1, 3})) == "--num_gpus");
  CHECK(input_error_where(sel({"", "node01@node02", -1, -1})) == "--exclude");
  CHECK(input_error_where(sel({"node01:x", "", -1, -1})) == "--include");
  CHECK(input_error_where(sel({"node01:0,0", "", -1, -1})) == "--include");
}

TEST_CASE("env files: KEY=VALUE lines, export prefix, comments; a line without '=' names file:line") {
  auto vars = parse_env_file("# c\n\nA=1\nexport B=two words\n  C='quoted'\nD=\"dq\"\nE=x=y\nF=\n", ".fmenv");
  REQUIRE(vars.size() == 6);
  CHECK(vars[0].name == "A");
  CHECK(vars[1].value == "two words");
  CHECK(vars[2].value == "quoted");
  CHECK(vars[3].value == "dq");
  CHECK(vars[4].value == "x=y");
  CHECK(vars[5].value.empty());
  CHECK(input_error_where([] { parse_env_file("A=1\nJUNK\n", ".fmenv"); }) == ".fmenv:2");
  CHECK(input_error_where([] { parse_env_file("A=1\n\n1BAD=2\n", "f"); }) == "f:3");
  CHECK(input_error_where([] { parse_env_assignment("NOEQUALS", "--env"); }) == "--env");
}

TEST_CASE("exports: default prefixes, then file, then --env; secrets masked") {
  std::vector<EnvVar> env = {{"NCCL_DEBUG", "INFO"}, {"HOME", "/root"}, {"UCX_TLS", "rc"},  {"FI_PROVIDER", "efa"},
                             {"OMP_NUM_THREADS", "4"}, {"FM_X", "1"},    {"PATH", "/bin"},  {"NCCLX", "no"},
                             {"LD_LIBRARY_PATH", "/l"}};
  auto d = default_exports(env);
  std::vector<std::string> names;
  for (auto& v : d) names.push_back(v.name);
  CHECK(names == std::vector<std::string>{"FI_PROVIDER", "FM_X", "LD_LIBRARY_PATH", "NCCL_DEBUG", "OMP_NUM_THREADS",
                                          "PATH", "UCX_TLS"});
  auto merged = collect_exports(d, {{"NCCL_DEBUG", "WARN"}, {"A", "f"}}, {{"A", "cli"}, {"WANDB_API_KEY", "s3cr3t"}});
  CHECK(merged[3].name == "NCCL_DEBUG");
  CHECK(merged[3].value == "WARN");
  CHECK(merged[merged.size() - 2].value == "cli");
  for (const char* secret : {"WANDB_API_KEY", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "my_passwd"})
    CHECK(is_secret_name(secret));
  CHECK_FALSE(is_secret_name("NCCL_DEBUG"));
  auto m = masked(merged);
  CHECK(m.back().value == "***");
  CHECK(m.back().name == "WANDB_API_KEY");
}

TEST_CASE("options: launcher form, spellings, and where PROGRAM starts") {
  Options o = parse({"-H", "hf", "--num-gpus=2", "--master_port", "1234", "--env", "A=1", "--env=B=2",
                     "--launcher_args", "-p 22 -o 'X=a b'", "prog", "--hostfile", "not-ours", "--"});
  CHECK_FALSE(o.agent);
  CHECK(o.hostfile == "hf");
  CHECK(o.num_gpus == 2);
  CHECK(o.master_port == 1234);
  REQUIRE(o.env.size() == 2);
  CHECK(o.env[1].value == "2");
  CHECK(o.launcher_args == std::vector<std::string>{"-p", "22", "-o", "X=a b"});
  CHECK(o.program == std::vector<std::string>{"prog", "--hostfile", "not-ours", "--"});
  Options d = parse({"--dry_run", "--", "--prog-with-dash", "x"});
  CHECK(d.dry_run);
  CHECK(d.program == std::vector<std::string>{"--prog-with-dash", "x"});
}

TEST_CASE("options: agent form is torchrun-compatible") {
  Options a = parse({"--nnodes=2", "--node-rank", "1", "--nproc-per-node=4", "--master-addr", "n1", "--master-port=555",
                     "train", "--lr", "1"});
  CHECK(a.agent);
  CHECK(a.nnodes == 2);
  CHECK(a.node_rank == 1);
  CHECK(a.nproc_per_node == 4);
  CHECK(a.master_addr == "n1");
  CHECK(a.master_port == 555);
  CHECK(a.program == std::vector<std::string>{"train", "--lr", "1"});
  Options r = parse({"--nnodes", "2", "--rdzv-backend=c10d", "--rdzv-endpoint=head:29400", "--nproc_per_node", "1", "p"});
  CHECK(r.master_addr == "head");
  CHECK(r.master_port == 29400);
  Options only_procs = parse({"--nproc_per_node", "3", "p"});
  CHECK(only_procs.agent);
  CHECK(only_procs.nnodes == 1);
}

TEST_CASE("options: mistakes name the option") {
  CHECK(input_error_where([] { parse({}); }) == "PROGRAM");
  CHECK(input_error_where([] { parse({"--num_gpus", "2"}); }) == "PROGRAM");
  CHECK(input_error_where([] { parse({"--launcher", "pdssh", "p"}); }) == "--launcher");
  CHECK(input_error_text([] { parse({"--launcher", "pdssh", "p"}); }).find("did you mean 'pdsh'") != std::string::npos);
  CHECK(input_error_where([] { parse({"--hostfil", "x", "p"}); }) == "--hostfil");
  CHECK(input_error_text([] { parse({"--hostfil", "x", "p"}); }).find("--hostfile") != std::string::npos);
  CHECK(input_error_where([] { parse({"--num_gpus", "zero", "p"}); }) == "--num_gpus");
  CHECK(input_error_where([] { parse({"--num_gpus", "0", "p"}); }) == "--num_gpus");
  CHECK(input_error_where([] { parse({"--master_port", "70000", "p"}); }) == "--master_port");
  CHECK(input_error_where([] { parse({"--master_addr", "a;b", "p"}); }) == "--master_addr");
  CHECK(input_error_where([] { parse({"--hostfile"}); }) == "--hostfile");
  CHECK(input_error_where([] { parse({"--dry_run=yes", "p"}); }) == "--dry_run");
  CHECK(input_error_where([] { parse({"--nnodes", "1:4", "p"}); }) == "--nnodes");
  CHECK(input_error_where([] { parse({"-H", "hf", "--nnodes", "2", "p"}); }) == "-H");
  CHECK(input_error_where([] { parse({"--grace_period", "-1", "p"}); }) == "--grace_period");
  CHECK(input_error_where([] { parse({"--heartbeat_timeout", "0", "p"}); }) == "--heartbeat_timeout");
  CHECK(input_error_where([] { parse({"--cuda_visible_devices", "all", "p"}); }) == "--cuda_visible_devices");
  CHECK(parse({"--cuda-visible-devices=node", "p"}).device_visibility == DeviceVisibility::Node);
  CHECK(input_error_where([] { parse({"--env", "NOVALUE", "p"}); }) == "--env");
  CHECK(input_error_where([] { parse({"--launcher_args", "'unclosed", "p"}); }) == "--launcher_args");
  CHECK(input_error_where([] { parse({"-x", "p"}); }) == "-x");
  CHECK(input_error_where([] { parse({"--log_dir", "a", "--log_dir", "b", "p"}); }) == "--log_dir");
}

TEST_CASE("world: ranks node by node; devices honour an inherited CUDA_VISIBLE_DEVICES") {
  World w({{"a", {0, 1}}, {"b", {1, 3, 5}}});
  CHECK(w.world_size() == 5);
  CHECK_FALSE(w.is_uniform());
  auto b = w.ranks_of_node(1);
  REQUIRE(b.size() == 3);
  CHECK(b[0].rank == 2);
  CHECK(b[2].rank == 4);
  CHECK(b[2].local_rank == 2);
  CHECK(b[2].slot == 5);
  CHECK(device_for_slot(1, std::nullopt, "a") == "1");
  CHECK(device_for_slot(1, std::string("4,6"), "a") == "6");
  CHECK(device_for_slot(0, std::string(""), "a").empty());
  CHECK(input_error_where([] { device_for_slot(2, std::string("4,6"), "a"); }) == "CUDA_VISIBLE_DEVICES");
  auto env = rank_environment(w, b[1], {"m", 7, 2}, std::string("7,8,9,10"));
  auto get = [&](const char* n) {
    for (auto& v : env)
      if (v.name == n) return v.value;
    return std::string("<unset>");
  };
  CHECK(get("RANK") == "3");
  CHECK(get("LOCAL_RANK") == "1");
  CHECK(get("WORLD_SIZE") == "5");
  CHECK(get("LOCAL_WORLD_SIZE") == "3");
  CHECK(get("NODE_RANK") == "1");
  CHECK(get("GROUP_RANK") == "1");
  CHECK(get("GROUP_WORLD_SIZE") == "2");
  CHECK(get("MASTER_ADDR") == "m");
  CHECK(get("MASTER_PORT") == "7");
  CHECK(get("CUDA_VISIBLE_DEVICES") == "10");
  CHECK(get("FM_RESTART_COUNT") == "2");
  auto node_view = rank_environment(w, b[1], {"m", 7, 0}, std::string("4,5,6,7,8,9"), DeviceVisibility::Node);
  CHECK(std::find_if(node_view.begin(), node_view.end(), [](const EnvVar& v) {
          return v.name == "CUDA_VISIBLE_DEVICES" && v.value == "5,7,9";
        }) != node_view.end());
  auto inherit_view = rank_environment(w, b[1], {"m", 7, 0}, std::string("4,5"), DeviceVisibility::Inherit);
  CHECK(std::none_of(inherit_view.begin(), inherit_view.end(),
                     [](const EnvVar& v) { return v.name == "CUDA_VISIBLE_DEVICES"; }));
  CHECK(format_world_slots(w) == "0,1@1,3,5");
  auto back = parse_world_slots("0,1@1,3,5", "x");
  CHECK(back[1].slots == std::vector<int>{1, 3, 5});
  CHECK(World({{"a", {0, 1}}, {"b", {0, 1}}}).is_uniform());
}

TEST_CASE("commands: agent arguments carry the world and the node") {
  JobSpec job;
  job.fmlaunch = "/opt/fm/fmlaunch";
  job.nodes = {{"n1", {0, 1}}, {"n2", {0, 1}}};
  job.rdzv = {"n1", 29500, 0};
  job.program = {"train", "a b"};
  job.cwd = "/work dir";
  auto a = agent_argv(job, 1, "n2");
  const std::vector<std::string> want = {"/opt/fm/fmlaunch", "--nnodes", "2", "--nproc_per_node", "2", "--node_rank", "1",
                                         "--host_label", "n2", "--master_addr", "n1", "--master_port", "29500",
                                         "--grace_period", "5", "--control", "--", "train", "a b"};
  CHECK(a == want);
  // What the remote login shell runs parses back into exactly these words.
  std::string remote = remote_command(job, {{"K", "v w"}}, a);
  CHECK(remote.rfind("cd '/work dir' && export K='v w' && exec ", 0) == 0);
  CHECK(shell_split(remote.substr(remote.find("exec ") + 5), "x") == a);

  job.device_visibility = DeviceVisibility::Node;
  auto with_view = agent_argv(job, 0, "n1");
  const std::vector<std::string> view_flag = {"--cuda_visible_devices", "node"};
  CHECK(std::search(with_view.begin(), with_view.end(), view_flag.begin(), view_flag.end()) != with_view.end());
  job.nodes = {{"n1", {0, 2}}, {"n2", {1}}};
  auto h = agent_argv(job, std::nullopt, "");
  CHECK(h[1] == "--world_slots");
  CHECK(h[2] == "0,2@1");
  CHECK(h[3] == "--world_hosts");
  CHECK(h[4] == "n1,n2");
}

TEST_CASE("commands: pdsh doubles '%' and lets pdsh fill in the host") {
  JobSpec job;
  job.fmlaunch = "/fm";
  job.nodes = {{"n1", {0}}, {"n2", {0}}};
  job.rdzv = {"n1", 29500, 0};
  job.program = {"p", "100%", "%h"};
  job.cwd = "/w";
  std::string cmd = pdsh_remote_command(job, {});
  CHECK(cmd.find("--host_label %h ") != std::string::npos);
  CHECK(cmd.find("100%%") != std::string::npos);
  CHECK(cmd.find(" '%%h'") != std::string::npos);
  auto argv = pdsh_argv(job, cmd);
  CHECK(std::vector<std::string>(argv.begin(), argv.begin() + 9) ==
        std::vector<std::string>{"pdsh", "-S", "-N", "-R", "ssh", "-f", "1024", "-w", "n1,n2"});
  CHECK(pdsh_ssh_args("-F cfg", 2222) == "-F cfg -p 2222");
  CHECK(pdsh_ssh_args("", -1).empty());
}

TEST_CASE("commands: srun, mpirun and containers") {
  JobSpec job;
  job.fmlaunch = "/fm";
  job.nodes = {{"n1", {0, 1}}, {"n2", {0, 1}}};
  job.rdzv = {"n1", 29500, 0};
  job.program = {"p", "x"};
  job.launcher_args = {"--partition=gpu"};
  auto s = srun_argv(job);
  CHECK(std::vector<std::string>(s.begin(), s.begin() + 9) ==
        std::vector<std::string>{"srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--nodelist=n1,n2",
                                 "--kill-on-bad-exit=1", "--input=all", "--partition=gpu", "/fm"});
  CHECK(s.back() == "x");
  job.launcher_args = {"--oversubscribe"};
  job.container = "/img.sif";
  job.container_runtime = "singularity";
  auto m = mpirun_argv(job, "/tmp/h", {"NCCL_DEBUG", "MASTER_ADDR"}, true);
  const std::vector<std::string> want = {"mpirun", "-np", "4", "--hostfile", "/tmp/h", "--map-by", "slot", "--tag-output",
                                         "--allow-run-as-root", "-x", "NCCL_DEBUG", "-x", "MASTER_ADDR", "--oversubscribe",
                                         "singularity", "exec", "--nv", "/img.sif", "p", "x"};
  CHECK(m == want);
  CHECK(mpirun_hostfile_text(job) == "n1\nn1\nn2\nn2\n");
  CHECK(container_wrap("apptainer", {"--bind", "/d"}, "i.sif", {"p"}) ==
        std::vector<std::string>{"apptainer", "exec", "--nv", "--bind", "/d", "i.sif", "p"});
  CHECK(container_wrap("apptainer", {}, "", {"p"}) == std::vector<std::string>{"p"});
}

TEST_CASE("control lines round-trip; rank output never parses as one") {
  auto line = format_failure(1, 3, 137, "node02", "was killed by signal 9 (SIGKILL)");
  auto m = parse_control_line(line);
  REQUIRE(m);
  CHECK(m->kind == "fail");
  CHECK(m->node == 1);
  CHECK(m->rank == 3);
  CHECK(m->code == 137);
  CHECK(m->host == "node02");
  CHECK(m->status == "was killed by signal 9 (SIGKILL)");
  auto hb = parse_control_line(format_heartbeat(4));
  REQUIRE(hb);
  CHECK(hb->node == 4);
  CHECK_FALSE(parse_control_line("[rank 0] " + line));
  CHECK_FALSE(parse_control_line("#fmlaunch# bogus node=1"));
}
