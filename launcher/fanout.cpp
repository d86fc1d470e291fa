#include "launcher/fanout.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <deque>
#include <filesystem>
#include <map>

#include "launcher/process.h"
#include "launcher/rank_group.h"
#include "runtime/base/text.h"

namespace fm::launcher {
namespace {

struct ProcState {
  const NodeProcess* spec = nullptr;
  Spawned p;
  LineSplitter out_lines, err_lines;
  bool exited = false;
  bool reported = false;
  int status = 0;
};

class Fanout {
 public:
  Fanout(const std::vector<NodeProcess>& procs, const FanoutOptions& opt, int sfd) : opt_(opt), sfd_(sfd) {
    procs_.resize(procs.size());
    for (size_t i = 0; i < procs.size(); ++i) procs_[i].spec = &procs[i];
    const double now = monotonic_seconds();
    for (const auto& p : procs)
      for (int n : p.nodes) last_seen_[n] = now, heard_[n] = false;
  }

  JobOutcome run() {
    for (auto& ps : procs_) {
      SpawnRequest req;
      req.argv = ps.spec->argv;
      req.env = ps.spec->env;
      req.stdin_pipe = opt_.agents;
      ps.p = spawn_process(req);
      if (ps.p.pid < 0) {
        ps.exited = true;
        ps.reported = true;
        fail(-1, "", 127,
             fmt::format("{}: could not start '{}': {}", ps.spec->label, ps.spec->argv.at(0), strerror(ps.p.exec_errno)));
      }
    }
    while (true) {
      poll_once();
      reap();
      check_exits();
      const double now = monotonic_seconds();
      if (opt_.agents && !stopping_) check_heartbeats(now);
      if (all_exited() && !stopping_) begin_stop();  // only leftovers (orphaned transports) remain
      if (stopping_ && !termed_ && now >= term_deadline_) {
        termed_ = true;
        for (auto& ps : procs_)
          if (!ps.exited) signal_group(ps.p.pid, SIGTERM);
        for (pid_t c : list_children()) kill(c, SIGTERM);
        kill_deadline_ = now + 3.0;
      }
      if (termed_ && !killed_ && now >= kill_deadline_) {
        killed_ = true;
        for (auto& ps : procs_)
          if (!ps.exited) signal_group(ps.p.pid, SIGKILL);
        for (pid_t c : list_children()) kill(c, SIGKILL);
      }
      if (all_exited() && no_children_) break;
      if (killed_ && now >= kill_deadline_ + 5.0) break;
    }
    for (auto& ps : procs_) {
      read_stream(ps, ps.p.out, ps.out_lines, 1);
      read_stream(ps, ps.p.err, ps.err_lines, 2);
      for (int* fd : {&ps.p.in, &ps.p.out, &ps.p.err})
        if (*fd >= 0) close(*fd), *fd = -1;
    }
    for (auto& [rank, fd] : logs_) close(fd);
    return outcome_;
  }

 private:
  void poll_once() {
    std::vector<pollfd> fds;
    fds.push_back({sfd_, POLLIN, 0});
    for (auto& ps : procs_) {
      if (ps.p.out >= 0) fds.push_back({ps.p.out, POLLIN, 0});
      if (ps.p.err >= 0) fds.push_back({ps.p.err, POLLIN, 0});
    }
    poll(fds.data(), fds.size(), 200);
    while (int sig = read_signal(sfd_)) {
      if (sig == SIGCHLD) continue;
      if (interrupted_) {
        if (sig == SIGINT) term_deadline_ = 0;  // a second Ctrl-C: stop waiting for the agents
        continue;
      }
      interrupted_ = true;
      say(fmt::format("received {}; stopping all nodes", signal_name(sig)));
      if (outcome_.exit_code == 0) {
        outcome_.exit_code = 128 + sig;
        outcome_.status = "stopped by " + signal_name(sig);
      }
      outcome_.interrupted = true;
      begin_stop();
    }
    for (auto& ps : procs_) {
      read_stream(ps, ps.p.out, ps.out_lines, 1);
      read_stream(ps, ps.p.err, ps.err_lines, 2);
    }
  }

  void read_stream(ProcState& ps, int& fd, LineSplitter& split, int console_fd) {
    read_lines(fd, split, [&](const std::string& l) { handle_line(ps, l, console_fd); });
  }

  void handle_line(ProcState& ps, const std::string& line, int console_fd) {
    if (opt_.agents) {
      if (auto m = parse_control_line(line)) {
        if (m->node >= 0) last_seen_[m->node] = monotonic_seconds(), heard_[m->node] = true;
        if (m->kind == "fail") fail(m->rank, m->host, m->code, m->status);
        return;
      }
      // Any line from a single-node process also proves its node alive.
      if (ps.spec->nodes.size() == 1) last_seen_[ps.spec->nodes[0]] = monotonic_seconds();
    }
    if (opt_.mpirun_tags && relay_mpirun_line(line)) return;
    write_all(console_fd, line + "\n");
  }

  // "[1,3]<stdout>:text" -> "[rank 3] text" (and the rank's log file).
  bool relay_mpirun_line(const std::string& line) {
    if (line.empty() || line[0] != '[') return false;
    size_t comma = line.find(',');
    size_t close_br = line.find(']');
    if (comma == std::string::npos || close_br == std::string::npos || comma > close_br) return false;
    long long rank = 0;
    if (!parse_int64(line.substr(comma + 1, close_br - comma - 1), rank)) return false;
    std::string rest = line.substr(close_br + 1);
    int fd = 1;
    if (rest.rfind("<stdout>:", 0) == 0) {
      rest = rest.substr(9);
    } else if (rest.rfind("<stderr>:", 0) == 0) {
      rest = rest.substr(9), fd = 2;
    } else {
      return false;
    }
    write_all(fd, fmt::format("[rank {}] {}\n", rank, rest));
    if (!opt_.log_dir.empty()) {
      auto it = logs_.find(static_cast<int>(rank));
      if (it == logs_.end()) {
        std::error_code ec;
        std::filesystem::create_directories(opt_.log_dir, ec);
        const std::string path = fmt::format("{}/rank_{}.log", opt_.log_dir, rank);
        int lfd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (opt_.restart_count ? O_APPEND : O_TRUNC), 0644);
        it = logs_.emplace(static_cast<int>(rank), lfd).first;
      }
      if (it->second >= 0) write_all(it->second, rest + "\n");
    }
    return true;
  }

  void reap() {
    while (true) {
      int st = 0;
      pid_t pid = waitpid(-1, &st, WNOHANG);
      if (pid > 0) {
        for (auto& ps : procs_)
          if (ps.p.pid == pid) ps.exited = true, ps.status = st;
        continue;
      }
      no_children_ = pid < 0 && errno == ECHILD;
      return;
    }
  }

  void check_exits() {
    for (auto& ps : procs_) {
      if (!ps.exited || ps.reported) continue;
      ps.reported = true;
      // Output written just before exiting may still sit in the pipes: it may hold a fail line.
      read_stream(ps, ps.p.out, ps.out_lines, 1);
      read_stream(ps, ps.p.err, ps.err_lines, 2);
      if (WIFEXITED(ps.status) && WEXITSTATUS(ps.status) == 0) continue;
      if (stopping_) continue;
      const int code = exit_code_of(ps.status);
      std::string what = fmt::format("{} {}", ps.spec->label, describe_status(ps.status));
      if (ps.spec->label.rfind("ssh", 0) == 0 && code == 255) what += " (the ssh connection failed)";
      std::string host = ps.spec->nodes.size() == 1 ? opt_.node_hosts.at(ps.spec->nodes[0]) : "";
      fail(-1, host, code, what);
    }
  }

  void check_heartbeats(double now) {
    for (auto& [node, seen] : last_seen_) {
      const double limit = heard_[node] ? opt_.heartbeat_timeout : opt_.first_heartbeat_timeout;
      if (now - seen > limit) {
        const std::string& host = opt_.node_hosts.at(node);
        fail(-1, host, 1, fmt::format("node {} ({}) sent nothing for {:g} s; its agent is considered lost", node, host, limit));
        return;
      }
    }
  }

  void fail(int rank, const std::string& host, int code, const std::string& what) {
    if (failed_ || interrupted_) return;
    failed_ = true;
    outcome_.exit_code = code == 0 ? 1 : code;
    outcome_.failed_rank = rank;
    outcome_.failed_host = host;
    outcome_.status = what;
    say(describe_failure(outcome_) + (all_exited() ? "" : "; stopping all nodes"));
    begin_stop();
  }

  void begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    for (auto& ps : procs_) {
      if (ps.p.in >= 0) close(ps.p.in), ps.p.in = -1;  // EOF: the agents stop their ranks
      if ((!opt_.agents || ps.spec->stop_with_sigterm) && !ps.exited) kill(ps.p.pid, SIGTERM);
    }
    // Agents need the grace period for their ranks, plus a little for the transport.
    term_deadline_ = monotonic_seconds() + opt_.grace_period + (opt_.agents ? 3.0 : 0.0);
  }

  bool all_exited() const {
    for (const auto& ps : procs_)
      if (!ps.exited) return false;
    return true;
  }

  FanoutOptions opt_;
  int sfd_;
  std::vector<ProcState> procs_;
  std::map<int, double> last_seen_;
  std::map<int, bool> heard_;
  std::map<int, int> logs_;
  JobOutcome outcome_;
  bool stopping_ = false, termed_ = false, killed_ = false;
  bool failed_ = false, interrupted_ = false, no_children_ = false;
  double term_deadline_ = 0, kill_deadline_ = 0;
};

}  // namespace

JobOutcome run_fanout(const std::vector<NodeProcess>& procs, const FanoutOptions& opt, int signal_fd) {
  Fanout f(procs, opt, signal_fd);
  return f.run();
}

}  // namespace fm::launcher
