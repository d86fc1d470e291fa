#include "launcher/process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

#include <fstream>

namespace fm::launcher {
namespace {

void set_cloexec(int fd) { fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC); }

void close_if_open(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

std::string find_executable(const std::string& name, const std::string& path_env) {
  auto usable = [](const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(p.c_str(), X_OK) == 0;
  };
  if (name.find('/') != std::string::npos) return usable(name) ? name : "";
  size_t start = 0;
  while (start <= path_env.size()) {
    size_t end = path_env.find(':', start);
    if (end == std::string::npos) end = path_env.size();
    const std::string dir = end > start ? path_env.substr(start, end - start) : std::string(".");
    std::string cand = fmt::format("{}/{}", dir, name);
    if (usable(cand)) return cand;
    start = end + 1;
  }
  return "";
}

Spawned spawn_process(const SpawnRequest& req) {
  Spawned s;
  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, exec_pipe[2] = {-1, -1};
  if (req.stdin_pipe && pipe2(in_pipe, O_CLOEXEC) != 0) return s.exec_errno = errno, s;
  if (req.capture_output && (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0))
    return s.exec_errno = errno, s;
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) return s.exec_errno = errno, s;

  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::vector<char*> argv, envp;
  for (const auto& a : req.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : req.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  std::string path_env;
  for (const auto& e : req.env)
    if (e.rfind("PATH=", 0) == 0) path_env = e.substr(5);
  std::string exe = find_executable(req.argv.at(0), path_env);
  const pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) {
    s.exec_errno = errno;
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], exec_pipe[0],
                   exec_pipe[1]})
      if (fd >= 0) close(fd);
    return s;
  }
  if (pid == 0) {
    setpgid(0, 0);
    if (req.death_signal > 0) {
      prctl(PR_SET_PDEATHSIG, req.death_signal);
      if (getppid() != parent) raise(req.death_signal);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGQUIT}) signal(sig, SIG_DFL);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    dup2(req.stdin_pipe ? in_pipe[0] : devnull, 0);
    if (req.capture_output) {
      dup2(out_pipe[1], 1);
      dup2(err_pipe[1], 2);
    }
    if (exe.empty()) {
      int e = ENOENT;
      (void)!write(exec_pipe[1], &e, sizeof e);
      _exit(127);
    }
    execve(exe.c_str(), argv.data(), envp.data());
    int e = errno;
    (void)!write(exec_pipe[1], &e, sizeof e);
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, so the group exists before we ever signal it
  close(exec_pipe[1]);
  int e = 0;
  ssize_t n;
  do {
    n = read(exec_pipe[0], &e, sizeof e);
  } while (n < 0 && errno == EINTR);
  close(exec_pipe[0]);
  if (req.stdin_pipe) close(in_pipe[0]);
  if (req.capture_output) {
    close(out_pipe[1]);
    close(err_pipe[1]);
  }
  if (n == static_cast<ssize_t>(sizeof e)) {
    int st;
    waitpid(pid, &st, 0);
    close_if_open(in_pipe[1]);
    close_if_open(out_pipe[0]);
    close_if_open(err_pipe[0]);
    s.exec_errno = e;
    return s;
  }
  s.pid = pid;
  s.in = in_pipe[1];
  s.out = out_pipe[0];
  s.err = err_pipe[0];
  for (int fd : {s.in, s.out, s.err})
    if (fd >= 0) {
      set_cloexec(fd);
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
  return s;
}

int exit_code_of(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return 1;
}

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

std::string describe_status(int st) {
  if (WIFEXITED(st)) return fmt::format("exited with code {}", WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return fmt::format("was killed by signal {} ({})", WTERMSIG(st), signal_name(WTERMSIG(st)));
  return "ended in an unknown state";
}

void signal_group(pid_t pgid, int sig) {
  if (pgid > 0) kill(-pgid, sig);
}

bool group_alive(pid_t pgid) { return pgid > 0 && kill(-pgid, 0) == 0; }

std::vector<pid_t> list_children() {
  std::vector<pid_t> out;
  const pid_t self = getpid();
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* ent = readdir(d)) {
    char* end = nullptr;
    long pid = strtol(ent->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string content;
    if (!std::getline(stat, content)) continue;
    // Field 4 is the ppid; the command name (field 2) is in parentheses and may hold blanks.
    size_t close_paren = content.rfind(')');
    if (close_paren == std::string::npos) continue;
    char state = 0;
    long ppid = 0;
    if (sscanf(content.c_str() + close_paren + 1, " %c %ld", &state, &ppid) != 2) continue;
    if (ppid == self) out.push_back(static_cast<pid_t>(pid));
  }
  closedir(d);
  return out;
}

int install_signal_fd() {
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, sig);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int read_signal(int sfd) {
  signalfd_siginfo info;
  ssize_t n = read(sfd, &info, sizeof info);
  if (n != static_cast<ssize_t>(sizeof info)) return 0;
  return static_cast<int>(info.ssi_signo);
}

bool write_all(int fd, std::string_view data) {
  const double deadline = monotonic_seconds() + 30.0;
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      // A slow reader: wait for room, but never forever.
      if (monotonic_seconds() > deadline) return false;
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, 100);
      continue;
    }
    return false;
  }
  return true;
}

double monotonic_seconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void read_lines(int& fd, LineSplitter& split, const std::function<void(const std::string&)>& on_line) {
  char buf[16384];
  while (fd >= 0) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      for (auto& l : split.feed(std::string_view(buf, static_cast<size_t>(n)))) on_line(l);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    for (auto& l : split.finish()) on_line(l);
    close(fd);
    fd = -1;
  }
}

std::vector<Captured> run_captured(const std::vector<SpawnRequest>& reqs, double timeout_s) {
  std::vector<Captured> out(reqs.size());
  std::vector<Spawned> procs;
  std::vector<bool> done(reqs.size(), false);
  for (size_t i = 0; i < reqs.size(); ++i) {
    procs.push_back(spawn_process(reqs[i]));
    if (procs[i].pid < 0) {
      done[i] = true;
      out[i].output = fmt::format("cannot run '{}': {}", reqs[i].argv.at(0), strerror(procs[i].exec_errno));
    }
  }
  const double deadline = monotonic_seconds() + timeout_s;
  auto read_some = [&](size_t i, int& fd) {
    char buf[4096];
    while (fd >= 0) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n > 0) {
        out[i].output.append(buf, static_cast<size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && errno == EAGAIN) {
        return;
      } else {
        close(fd);
        fd = -1;
      }
    }
  };
  std::vector<bool> reaped(reqs.size(), false);
  while (true) {
    bool all = true;
    std::vector<pollfd> fds;
    for (size_t i = 0; i < procs.size(); ++i) {
      if (done[i]) continue;
      all = false;
      if (procs[i].out >= 0) fds.push_back({procs[i].out, POLLIN, 0});
      if (procs[i].err >= 0) fds.push_back({procs[i].err, POLLIN, 0});
    }
    if (all) break;
    poll(fds.data(), fds.size(), 50);
    const bool late = monotonic_seconds() > deadline;
    for (size_t i = 0; i < procs.size(); ++i) {
      if (done[i]) continue;
      read_some(i, procs[i].out);
      read_some(i, procs[i].err);
      if (!reaped[i]) {
        int st = 0;
        if (waitpid(procs[i].pid, &st, WNOHANG) == procs[i].pid) reaped[i] = true, out[i].status = st;
      }
      const bool pipes_closed = procs[i].out < 0 && procs[i].err < 0;
      if (reaped[i] && (pipes_closed || late)) {
        done[i] = true;  // (a descendant may hold the pipes open; it gets no more time than that)
      } else if (late) {
        signal_group(procs[i].pid, SIGKILL);
        int st = 0;
        waitpid(procs[i].pid, &st, 0);
        out[i].status = -1;
        out[i].output += fmt::format("(no answer within {:g} s)", timeout_s);
        done[i] = true;
      }
    }
  }
  for (auto& p : procs)
    for (int fd : {p.in, p.out, p.err})
      if (fd >= 0) close(fd);
  return out;
}

std::vector<std::string> LineSplitter::feed(std::string_view data) {
  std::vector<std::string> lines;
  buf_.append(data);
  size_t start = 0;
  while (true) {
    size_t nl = buf_.find('\n', start);
    if (nl == std::string::npos) break;
    lines.push_back(buf_.substr(start, nl - start));
    start = nl + 1;
  }
  buf_.erase(0, start);
  while (buf_.size() >= max_line_) {
    lines.push_back(buf_.substr(0, max_line_));
    buf_.erase(0, max_line_);
  }
  return lines;
}

std::vector<std::string> LineSplitter::finish() {
  std::vector<std::string> out;
  if (!buf_.empty()) out.push_back(std::move(buf_));
  buf_.clear();
  return out;
}

}  // namespace fm::launcher
