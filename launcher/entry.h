// The two things fmlaunch can be asked to do (see options.h): run a whole job, or run one node's
// ranks as a torchrun-compatible agent. Both return the process exit code: 0 on success, the
// failing rank's code (128+signal for a signal) on failure, and throw InputError for bad input
// (the caller prints it and exits 2) before anything starts.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "launcher/options.h"
#include "launcher/rank_group.h"

namespace fm::launcher {

int run_agent(const Options& o);
int run_launcher(const Options& o);

// Shared by both forms.
std::vector<EnvVar> read_env_sources(const Options& o, bool default_file);
std::string resolve_container_runtime(const Options& o, const std::string& host);
std::string this_executable();
std::string local_host_name();
// Restart loop: runs `once(attempt)` until it succeeds, is interrupted, or restarts run out.
int run_with_restarts(int first_attempt, int max_restarts, bool report,
                      const std::function<JobOutcome(int)>& once);
// "rank 3 (host h) was killed by ..." -> one summary line.
void report_outcome(const JobOutcome& out, int attempts);

}  // namespace fm::launcher
