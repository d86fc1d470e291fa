#include "launcher/rank_group.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <filesystem>

#include "launcher/process.h"
#include "runtime/base/error.h"

namespace fm::launcher {

void say(const std::string& msg) { write_all(2, "fmlaunch: " + msg + "\n"); }

namespace {

struct RankState {
  const RankLaunch* spec = nullptr;
  pid_t pid = -1;
  int out = -1, err = -1;
  LineSplitter out_lines, err_lines;
  int log_fd = -1;
  std::deque<std::string> tail;
  bool exited = false;
  bool reported = false;
  int status = 0;
  std::string start_error;  // set when the program could not be executed
};

class Group {
 public:
  Group(const std::vector<RankLaunch>& ranks, const GroupOptions& opt, int sfd) : opt_(opt), sfd_(sfd) {
    ranks_.resize(ranks.size());
    for (size_t i = 0; i < ranks.size(); ++i) ranks_[i].spec = &ranks[i];
  }

  JobOutcome run() {
    open_logs();
    for (auto& r : ranks_) start(r);
    double next_hb = 0;
    stdin_open_ = opt_.control;
    if (stdin_open_) fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    while (true) {
      poll_once();
      reap();
      check_failures();
      const double now = monotonic_seconds();
      if (opt_.control && now >= next_hb) {
        next_hb = now + 1.0;
        if (!write_all(1, format_heartbeat(opt_.node_rank) + "\n")) launcher_lost("its output channel closed");
      }
      if (!stopping_ && all_exited()) begin_stop(/*quiet=*/true);
      if (stopping_ && !killed_ && now >= kill_deadline_) kill_everything();
      if (stopping_ && all_exited() && no_children_) break;
      if (killed_ && now >= kill_deadline_ + 5.0) {
        say(fmt::format("node {}: some processes did not exit after SIGKILL; giving up on them", opt_.node_rank));
        break;
      }
    }
    for (auto& r : ranks_) {
      drain(r, true);
      for (int* fd : {&r.out, &r.err, &r.log_fd})
        if (*fd >= 0) close(*fd), *fd = -1;
    }
    return outcome_;
  }

 private:
  void open_logs() {
    if (opt_.log_dir.empty()) return;
    std::error_code ec;
    std::filesystem::create_directories(opt_.log_dir, ec);
    for (auto& r : ranks_) {
      const std::string path = fmt::format("{}/rank_{}.log", opt_.log_dir, r.spec->place.rank);
      int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (opt_.restart_count == 0 ? O_TRUNC : O_APPEND);
      r.log_fd = open(path.c_str(), flags, 0644);
      if (r.log_fd < 0)
        throw InputError("--log_dir", fmt::format("cannot write '{}': {}", path, strerror(errno)),
                         "give a directory that exists or can be created, and is writable");
      if (opt_.restart_count > 0)
        write_all(r.log_fd, fmt::format("----- fmlaunch: restart {} -----\n", opt_.restart_count));
    }
  }

  void start(RankState& r) {
    SpawnRequest req;
    req.argv = r.spec->argv;
    req.env = r.spec->env;
    Spawned s = spawn_process(req);
    if (s.pid < 0) {
      r.exited = true;
      r.status = 127 << 8;  // as if it had exited with 127, the shell's "cannot execute"
      r.start_error = fmt::format("could not start '{}': {}", r.spec->argv.at(0), strerror(s.exec_errno));
      add_line(r, r.start_error, 2);
      return;
    }
    r.pid = s.pid;
    r.out = s.out;
    r.err = s.err;
  }

  void add_line(RankState& r, const std::string& line, int console_fd) {
    const std::string prefixed = fmt::format("[rank {}] {}\n", r.spec->place.rank, line);
    if (!write_all(console_fd, prefixed) && opt_.control && console_fd == 1)
      launcher_lost("its output channel closed");
    if (r.log_fd >= 0) write_all(r.log_fd, line + "\n");
    r.tail.push_back(line);
    while (r.tail.size() > opt_.tail_lines) r.tail.pop_front();
  }

  void read_pipe(RankState& r, int& fd, LineSplitter& split, int console_fd) {
    read_lines(fd, split, [&](const std::string& l) { add_line(r, l, console_fd); });
  }

  // After a rank exits, its pipes hold its last words; read them before reporting. A descendant
  // that still holds the pipe open must not block us, hence the short bound.
  void drain(RankState& r, bool final) {
    const double until = monotonic_seconds() + (final ? 0.0 : 0.3);
    do {
      read_pipe(r, r.out, r.out_lines, 1);
      read_pipe(r, r.err, r.err_lines, 2);
      if (r.out < 0 && r.err < 0) return;
      pollfd p[2] = {{r.out, POLLIN, 0}, {r.err, POLLIN, 0}};
      poll(p, 2, 20);
    } while (monotonic_seconds() < until);
    if (final) {
      for (auto& l : r.out_lines.finish()) add_line(r, l, 1);
      for (auto& l : r.err_lines.finish()) add_line(r, l, 2);
    }
  }

  void poll_once() {
    std::vector<pollfd> fds;
    fds.push_back({sfd_, POLLIN, 0});
    if (stdin_open_) fds.push_back({0, POLLIN, 0});
    for (auto& r : ranks_) {
      if (r.out >= 0) fds.push_back({r.out, POLLIN, 0});
      if (r.err >= 0) fds.push_back({r.err, POLLIN, 0});
    }
    poll(fds.data(), fds.size(), 200);
    while (int sig = read_signal(sfd_)) {
      if (sig == SIGCHLD) continue;  // reaped below
      if (stopping_ && sig == SIGINT && interrupted_) {
        kill_everything();  // a second Ctrl-C: no more grace
        continue;
      }
      if (!interrupted_) {
        say(fmt::format("received {}; stopping all ranks", signal_name(sig)));
        interrupted_ = true;
        outcome_.interrupted = true;
        if (outcome_.exit_code == 0) outcome_.exit_code = 128 + sig, outcome_.status = "stopped by " + signal_name(sig);
        begin_stop(false);
      }
    }
    if (stdin_open_) {
      char buf[256];
      ssize_t n = read(0, buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        stdin_open_ = false;
        launcher_lost("its launcher closed the connection");
      }
    }
    for (auto& r : ranks_) {
      read_pipe(r, r.out, r.out_lines, 1);
      read_pipe(r, r.err, r.err_lines, 2);
    }
  }

  void launcher_lost(const std::string& why) {
    if (interrupted_) return;
    interrupted_ = true;
    outcome_.interrupted = true;
    if (outcome_.exit_code == 0) outcome_.exit_code = 128 + SIGTERM, outcome_.status = "stopped: " + why;
    if (!stopping_ || quiet_stop_) say(fmt::format("node {}: {}; stopping its ranks", opt_.node_rank, why));
    begin_stop(false);
  }

  void reap() {
    while (true) {
      int st = 0;
      pid_t pid = waitpid(-1, &st, WNOHANG);
      if (pid > 0) {
        for (auto& r : ranks_)
          if (r.pid == pid) r.exited = true, r.status = st;
        continue;
      }
      no_children_ = pid < 0 && errno == ECHILD;
      return;
    }
  }

  void check_failures() {
    for (auto& r : ranks_) {
      if (!r.exited || r.reported) continue;
      r.reported = true;
      if (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) continue;
      if (failed_ || interrupted_) continue;  // a casualty of the stop, not the cause
      failed_ = true;
      drain(r, false);
      const auto& p = r.spec->place;
      outcome_.exit_code = exit_code_of(r.status);
      outcome_.failed_rank = p.rank;
      outcome_.failed_host = r.spec->host;
      outcome_.status = r.start_error.empty() ? describe_status(r.status) : r.start_error;
      outcome_.tail.assign(r.tail.begin(), r.tail.end());
      if (opt_.control)
        write_all(1, format_failure(opt_.node_rank, p.rank, outcome_.exit_code, r.spec->host, outcome_.status) + "\n");
      std::string report = fmt::format("rank {} (node {}, host {}, local rank {}) {}", p.rank, p.node_rank,
                                       r.spec->host, p.local_rank, outcome_.status);
      if (!r.tail.empty()) {
        report += fmt::format("\nfmlaunch: last {} line(s) of rank {}{}:", r.tail.size(), p.rank,
                              opt_.log_dir.empty() ? "" : fmt::format(" (log: {}/rank_{}.log)", opt_.log_dir, p.rank));
        for (const auto& l : r.tail) report += "\n  | " + l;
      }
      say(report);
      say(fmt::format("stopping all ranks (SIGTERM, then SIGKILL after {:g} s)", opt_.grace_period));
      begin_stop(false);
    }
  }

  bool all_exited() const {
    for (const auto& r : ranks_)
      if (!r.exited) return false;
    return true;
  }

  void begin_stop(bool quiet) {
    if (stopping_ && !(quiet_stop_ && !quiet)) return;
    const bool first = !stopping_;
    stopping_ = true;
    quiet_stop_ = quiet;
    if (first || !quiet) kill_deadline_ = monotonic_seconds() + opt_.grace_period;
    for (auto& r : ranks_) {
      if (r.pid > 0 && group_alive(r.pid)) {
        signal_group(r.pid, SIGTERM);
        signal_group(r.pid, SIGCONT);
      }
    }
    for (pid_t orphan : list_children())
      if (!is_rank_leader(orphan)) kill(orphan, SIGTERM);
  }

  void kill_everything() {
    killed_ = true;
    kill_deadline_ = std::min(kill_deadline_, monotonic_seconds());
    for (auto& r : ranks_)
      if (r.pid > 0) signal_group(r.pid, SIGKILL);
    for (pid_t child : list_children()) kill(child, SIGKILL);
  }

  bool is_rank_leader(pid_t pid) const {
    for (const auto& r : ranks_)
      if (r.pid == pid && !r.exited) return true;
    return false;
  }

  GroupOptions opt_;
  int sfd_;
  std::vector<RankState> ranks_;
  JobOutcome outcome_;
  bool stdin_open_ = false;
  bool stopping_ = false, quiet_stop_ = false, killed_ = false;
  bool failed_ = false, interrupted_ = false;
  bool no_children_ = false;
  double kill_deadline_ = 0;
};

}  // namespace

JobOutcome run_rank_group(const std::vector<RankLaunch>& ranks, const GroupOptions& opt, int signal_fd) {
  Group g(ranks, opt, signal_fd);
  return g.run();
}

}  // namespace fm::launcher
