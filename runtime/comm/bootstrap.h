// Bootstrap: how this process was started, its world communicator, and how the job ends.
//
// detect_launch() reads the environment (a pure function, testable with a fake environment):
//  - Open MPI: mpirun sets OMPI_COMM_WORLD_RANK, srun --mpi=pmix sets PMIX_RANK  -> MPI backend.
//  - RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (torchrun style, fmlaunch)      -> Gloo backend over
//    our rendezvous store (runtime/comm/store.h), with heartbeat liveness.
//  - neither                                                                    -> one process; no
//    MPI initialisation, a trivial communicator.
// backend "mpi" or "gloo" forces the choice ("mpi" without mpirun is a singleton MPI world).
// Inconsistent values are InputErrors naming the variable (RANK >= WORLD_SIZE, a missing
// MASTER_ADDR with WORLD_SIZE > 1, non-numbers, srun without --mpi=pmix).
//
// Failure: a RuntimeFault from a communicator means the job is over. Call abort_job(code, msg): it
// prints the message, tells the peers (MPI_Abort, or the store's "rank R failed" notice) and ends
// the process without running destructors, so nothing is left hanging. A World destroyed while
// an exception is in flight says no goodbye and keeps its connections until the process ends, so
// a catch handler outside its scope can still call abort_job; peers see this rank lost or failed
// either way. On the environment
// path a rank that learns of a lost peer and has not ended within liveness.exit_grace is ended
// by abort_job from the heartbeat thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/comm/store.h"

namespace fm::comm {

enum class LaunchKind { Single, Mpi, Env };

struct LaunchInfo {
  LaunchKind kind = LaunchKind::Single;
  std::string how;  // "mpirun", "srun --mpi=pmix", "RANK/WORLD_SIZE environment", "single process", ...
  int rank = 0, world_size = 1;  // known before MPI init only on the environment path
  int local_rank = -1;           // LOCAL_RANK when given
  std::string master_addr;
  int master_port = 0;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
std::optional<std::string> process_env(const std::string& name);

inline const std::vector<std::string> kBackends = {"auto", "mpi", "gloo"};

// `backend_flag` is the flag or key that set `backend`, for the error message.
LaunchInfo detect_launch(const std::string& backend, const EnvLookup& env = process_env,
                         const std::string& backend_flag = "--comm_backend");

struct BootstrapOptions {
  std::string backend = "auto";  // auto | mpi | gloo
  std::string backend_flag = "--comm_backend";
  Millis timeout = kDefaultTimeout;  // every communicator's timeout (fmtrain --comm_timeout)
  LivenessConfig liveness;           // environment path; an empty `fatal` means abort_job
  EnvLookup env = process_env;
};

class World {
 public:
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  const std::string& hostname() const { return hosts_[static_cast<size_t>(rank_)]; }
  const std::vector<std::string>& hosts() const { return hosts_; }  // per world rank
  LaunchKind kind() const { return launch_.kind; }
  const std::string& how() const { return launch_.how; }
  const char* backend() const { return comm_->backend(); }
  // One line: "mpi backend, 4 ranks on 1 host (mpirun; Open MPI v4.1.4, MPI_THREAD_MULTIPLE)".
  const std::string& description() const { return description_; }

  const CommPtr& comm() const { return comm_; }

  // Collective clean end: every rank calls it once when done (MPI_Finalize, or goodbye to the
  // store; rank 0 serves until every rank said goodbye or the timeout passes). Idempotent.
  void finalize();

 private:
  friend std::unique_ptr<World> bootstrap(const BootstrapOptions& opts);
  World() = default;

  LaunchInfo launch_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::vector<std::string> hosts_;
  std::string description_;
  CommPtr comm_;
  std::unique_ptr<StoreServer> server_;
  std::shared_ptr<StoreClient> store_;
  Millis timeout_{};
  bool finalized_ = false;
};

std::unique_ptr<World> bootstrap(const BootstrapOptions& opts = {});

// Prints `message` (an error line naming this rank), tells the peers and ends the process with
// `code` at once. Safe from any thread, before or after bootstrap.
[[noreturn]] void abort_job(int code, const std::string& message);

}  // namespace fm::comm
