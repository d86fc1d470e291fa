// What a job run reports, and the line protocol between a per-node agent and its launcher.
//
// An agent started by a launcher (--control) writes, besides the ranks' output lines (always
// prefixed "[rank R] "), control lines on its stdout:
//   #fmlaunch# hb node=I                                           every second (liveness)
//   #fmlaunch# fail node=I rank=R code=C host=H status=TEXT...     the moment a rank fails
// They travel through ssh, pdsh -N or srun unchanged; the launcher removes them from the console.
// A rank cannot forge one, since its lines always start with "[rank ".
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fm::launcher {

inline constexpr std::string_view kControlPrefix = "#fmlaunch# ";

struct ControlMessage {
  std::string kind;  // "hb" | "fail"
  int node = -1;
  int rank = -1;
  int code = 0;
  std::string host;
  std::string status;
};

std::string format_heartbeat(int node);
std::string format_failure(int node, int rank, int code, const std::string& host, const std::string& status);
std::optional<ControlMessage> parse_control_line(std::string_view line);

// How one run of a job (all ranks, once) ended.
struct JobOutcome {
  int exit_code = 0;         // 0: every rank succeeded; else the failing rank's code (128+signal)
  bool interrupted = false;  // stopped from outside (signal to fmlaunch, launcher gone): never restarted
  int failed_rank = -1;      // -1: not a rank (a node, ssh, srun...)
  std::string failed_host;
  std::string status;        // a rank's: "exited with code 3", "was killed by signal 9 (SIGKILL)";
                             // otherwise the whole story ("ssh node01 exited with code 255 ...")
  std::vector<std::string> tail;  // last output lines of the failing rank, when known here
};

// "rank 3 (host node01) was killed by signal 9 (SIGKILL)", or the status alone when no rank failed.
std::string describe_failure(const JobOutcome& out);

}  // namespace fm::launcher
