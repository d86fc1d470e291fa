// Child processes, signals and output lines: the POSIX plumbing under the agent and the launcher.
//
// Every child is started in its own process group (so one kill(-pgid) reaches everything it
// forks), with its stdout/stderr on pipes we read, stdin on /dev/null or on a pipe we hold, and a
// parent-death signal so it cannot outlive a crashed fmlaunch. fmlaunch marks itself a child
// subreaper, so descendants orphaned by a dying rank are re-parented to it and can be found and
// stopped too. SIGCHLD/SIGINT/SIGTERM/SIGHUP are received through a signalfd in the poll loop;
// SIGPIPE is ignored (a closed reader shows up as EPIPE).
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace fm::launcher {

struct SpawnRequest {
  std::vector<std::string> argv;  // argv[0]: a path, or a name looked up in the child's PATH
  std::vector<std::string> env;   // the child's whole environment, "K=V"
  bool stdin_pipe = false;        // else /dev/null
  bool capture_output = true;     // else the child shares our stdout/stderr
  int death_signal = 15;          // SIGTERM when we die
};

struct Spawned {
  pid_t pid = -1;
  int in = -1, out = -1, err = -1;  // our ends of the pipes, or -1
  int exec_errno = 0;               // non-zero: the program could not be executed (pid already reaped)
};

// Starts a child; failure to execute is reported in exec_errno (the child is gone by then).
Spawned spawn_process(const SpawnRequest& req);

// PATH lookup like execvp, in the PATH given; returns "" when not found. A name with '/' is
// returned as is when it names an executable file.
std::string find_executable(const std::string& name, const std::string& path_env);

// Exit code of a wait status: the code, or 128+signal.
int exit_code_of(int wait_status);
// "exited with code 3" / "was killed by signal 9 (SIGKILL)".
std::string describe_status(int wait_status);
std::string signal_name(int sig);

// Sends `sig` to a process group; ignores groups that are gone.
void signal_group(pid_t pgid, int sig);
// True while any process of the group exists.
bool group_alive(pid_t pgid);
// Our direct children (including orphans re-parented to us), from /proc.
std::vector<pid_t> list_children();

// Makes this process a child subreaper, blocks the signals the loop handles and returns a signalfd
// for them (SIGCHLD, SIGINT, SIGTERM, SIGHUP). SIGPIPE is ignored.
int install_signal_fd();
// Reads one pending signal from the fd; 0 when none.
int read_signal(int sfd);

// Non-blocking write of a whole buffer to a fd that may be a pipe; false on EPIPE or other errors.
bool write_all(int fd, std::string_view data);

double monotonic_seconds();

// Splits a byte stream into lines. Lines longer than max_line are cut and emitted in pieces.
class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line = 64 * 1024) : max_line_(max_line) {}
  // Appends data and returns the complete lines (without '\n').
  std::vector<std::string> feed(std::string_view data);
  // The unterminated remainder, if any (at end of stream).
  std::vector<std::string> finish();

 private:
  std::string buf_;
  size_t max_line_;
};

// Reads what is available on a non-blocking fd and hands over each complete line; at end of
// stream also the unterminated rest, then closes the fd and sets it to -1.
void read_lines(int& fd, LineSplitter& split, const std::function<void(const std::string&)>& on_line);

// Runs short helper commands (ssh probes, scontrol) side by side and collects their output
// (stdout and stderr together). Any still running after `timeout_s` is killed and reported with
// status -1.
struct Captured {
  int status = -1;  // wait status, or -1 on timeout / failure to start
  std::string output;
};
std::vector<Captured> run_captured(const std::vector<SpawnRequest>& reqs, double timeout_s);

}  // namespace fm::launcher
