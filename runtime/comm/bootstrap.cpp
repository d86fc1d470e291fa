#include "runtime/comm/bootstrap.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <set>

#include "runtime/base/error.h"
#include "runtime/base/log.h"
#include "runtime/base/text.h"
#include "runtime/comm/gloo_comm.h"
#include "runtime/comm/mpi_comm.h"

namespace fm::comm {

std::optional<std::string> process_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

namespace {

// What abort_job needs to tell the peers; set by bootstrap.
struct JobState {
  std::mutex mu;
  LaunchKind kind = LaunchKind::Single;
  std::weak_ptr<StoreClient> store;
  StoreServer* server = nullptr;  // rank 0 on the environment path
  int rank = 0;
};
JobState& job() {
  static JobState s;
  return s;
}

long long env_int(const EnvLookup& env, const std::string& name, long long lo, long long hi, const std::string& hint) {
  const auto v = env(name);
  long long x = 0;
  if (!v || !parse_int64(*v, x))
    throw InputError(name, fmt::format("'{}' is not a whole number", v.value_or("")), hint);
  if (x < lo || x > hi)
    throw InputError(name, hi == LLONG_MAX ? fmt::format("must be at least {}, got {}", lo, x)
                                           : fmt::format("must be in [{}, {}], got {}", lo, hi, x),
                     hint);
  return x;
}

bool set_nonempty(const EnvLookup& env, const char* name) {
  auto v = env(name);
  return v && !v->empty();
}

LaunchInfo parse_env_launch(const EnvLookup& env) {
  const char* kAll = "RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT";
  if (!set_nonempty(env, "WORLD_SIZE"))
    throw InputError("WORLD_SIZE", fmt::format("is not set, but RANK is; ranks started by environment need {}", kAll),
                     "set WORLD_SIZE to the number of processes (or start the job with mpirun)");
  if (!set_nonempty(env, "RANK"))
    throw InputError("RANK", fmt::format("is not set, but WORLD_SIZE is; ranks started by environment need {}", kAll),
                     "set RANK to this process's rank, 0 to WORLD_SIZE-1");
  LaunchInfo li;
  li.kind = LaunchKind::Env;
  li.how = "RANK/WORLD_SIZE environment";
  li.world_size = static_cast<int>(env_int(env, "WORLD_SIZE", 1, 1 << 20, "the number of processes of the job"));
  const auto rank_text = env("RANK").value_or("");
  long long r = 0;
  if (!parse_int64(rank_text, r))
    throw InputError("RANK", fmt::format("'{}' is not a whole number", rank_text), "RANK is 0 to WORLD_SIZE-1");
  if (r < 0 || r >= li.world_size)
    throw InputError("RANK", fmt::format("is {} but WORLD_SIZE is {}", r, li.world_size),
                     "RANK must be in [0, WORLD_SIZE): every process gets a different one");
  li.rank = static_cast<int>(r);
  if (set_nonempty(env, "LOCAL_RANK"))
    li.local_rank = static_cast<int>(env_int(env, "LOCAL_RANK", 0, li.world_size - 1,
                                             "the process's index on its host, 0 to WORLD_SIZE-1"));
  if (li.world_size == 1) {
    li.kind = LaunchKind::Single;
    li.how = "RANK/WORLD_SIZE environment with WORLD_SIZE=1";
    return li;
  }
  if (!set_nonempty(env, "MASTER_ADDR"))
    throw InputError("MASTER_ADDR", fmt::format("is not set, but WORLD_SIZE is {}", li.world_size),
                     "set it to the address of rank 0's host (127.0.0.1 when every rank runs on this machine)");
  li.master_addr = *env("MASTER_ADDR");
  if (!set_nonempty(env, "MASTER_PORT"))
    throw InputError("MASTER_PORT", fmt::format("is not set, but WORLD_SIZE is {}", li.world_size),
                     "set it to a free TCP port on rank 0's host, the same for every rank (e.g. 29500)");
  li.master_port = static_cast<int>(env_int(env, "MASTER_PORT", 1, 65535, "a free TCP port on rank 0's host"));
  return li;
}

std::string mpi_how(const EnvLookup& env) {
  if (env("OMPI_COMM_WORLD_RANK")) return "mpirun";
  if (env("PMIX_RANK") && env("SLURM_JOB_ID")) return "srun --mpi=pmix";
  if (env("PMIX_RANK")) return "PMIx launcher";
  return "MPI singleton";
}

}  // namespace

LaunchInfo detect_launch(const std::string& backend, const EnvLookup& env, const std::string& backend_flag) {
  if (backend != "auto" && backend != "mpi" && backend != "gloo")
    throw InputError(backend_flag, fmt::format("unknown communication backend '{}'", backend),
                     suggestion_hint(backend, kBackends));
  const bool has_mpi = env("OMPI_COMM_WORLD_RANK") || env("PMIX_RANK");
  const bool has_env = env("RANK") || env("WORLD_SIZE");
  if (backend == "mpi" || (backend == "auto" && has_mpi)) {
    LaunchInfo li;
    li.kind = LaunchKind::Mpi;
    li.how = mpi_how(env);
    return li;
  }
  if (backend == "gloo" && !has_env)
    throw InputError("RANK", "is not set, but the gloo backend needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT",
                     fmt::format("set them (as fmlaunch and torchrun do), or use {} auto", backend_flag));
  if (has_env) return parse_env_launch(env);
  // A multi-task launch we cannot join would silently run N copies of a one-process job.
  long long tasks = 0;
  if (auto v = env("SLURM_STEP_NUM_TASKS"); v && parse_int64(*v, tasks) && tasks > 1)
    throw InputError("SLURM_STEP_NUM_TASKS", fmt::format("is {}, but neither PMIX_RANK nor RANK is set", tasks),
                     "start the ranks with `srun --mpi=pmix` (Open MPI is built with PMIx), or with mpirun");
  if (auto v = env("PMI_SIZE"); v && parse_int64(*v, tasks) && tasks > 1)
    throw InputError("PMI_SIZE", fmt::format("is {}: a PMI-1/PMI-2 launcher started this job", tasks),
                     "use Open MPI's mpirun or `srun --mpi=pmix`; other PMI flavours cannot start these ranks");
  LaunchInfo li;
  li.how = "single process";
  return li;
}

// ---- World -----------------------------------------------------------------------------------------

std::unique_ptr<World> bootstrap(const BootstrapOptions& opts) {
  std::unique_ptr<World> w(new World());
  w->launch_ = detect_launch(opts.backend, opts.env, opts.backend_flag);
  w->timeout_ = opts.timeout;
  std::string detail;
  switch (w->launch_.kind) {
    case LaunchKind::Single:
      w->comm_ = make_single_communicator(opts.timeout);
      break;
    case LaunchKind::Mpi: {
      const auto& info = mpi_init();
      w->comm_ = make_mpi_world(opts.timeout);
      w->local_rank_ = info.local_rank;
      w->local_size_ = info.local_size;
      detail = fmt::format("; {}, {}", info.library, info.thread_level);
      break;
    }
    case LaunchKind::Env: {
      const auto& li = w->launch_;
      LivenessConfig live = opts.liveness;
      if (!live.fatal) live.fatal = [](const std::string& msg) { abort_job(kExitRuntimeFault, msg); };
      if (li.rank == 0) w->server_ = std::make_unique<StoreServer>(li.master_port, li.world_size, live);
      w->store_ = std::make_shared<StoreClient>(li.master_addr, li.master_port, li.rank, li.world_size, opts.timeout,
                                                live);
      {
        std::lock_guard<std::mutex> lock(job().mu);
        job().kind = LaunchKind::Env;
        job().store = w->store_;
        job().server = w->server_.get();
        job().rank = li.rank;
      }
      w->comm_ = make_gloo_world(w->store_, opts.timeout);
      detail = fmt::format("; store at {}:{}", li.master_addr, li.master_port);
      break;
    }
  }
  if (w->launch_.kind == LaunchKind::Mpi) {
    std::lock_guard<std::mutex> lock(job().mu);
    job().kind = LaunchKind::Mpi;
  }
  w->rank_ = w->comm_->rank();
  w->size_ = w->comm_->size();

  // Every rank learns every host name (layout tables, local ranks on the environment path).
  constexpr size_t kHost = 64;
  char me[kHost] = {};
  ::gethostname(me, kHost - 1);
  std::vector<char> all(kHost * static_cast<size_t>(w->size_));
  w->comm_->all_gather(me, all.data(), kHost, DType::U8);
  for (int r = 0; r < w->size_; ++r) w->hosts_.emplace_back(all.data() + kHost * static_cast<size_t>(r));

  if (w->launch_.kind != LaunchKind::Mpi) {
    int before = 0, same = 0;
    for (int r = 0; r < w->size_; ++r) {
      if (w->hosts_[r] != w->hosts_[w->rank_]) continue;
      ++same;
      if (r < w->rank_) ++before;
    }
    w->local_rank_ = w->launch_.local_rank >= 0 ? w->launch_.local_rank : before;
    w->local_size_ = same;
  }
  std::set<std::string> distinct(w->hosts_.begin(), w->hosts_.end());
  w->description_ = fmt::format("{} backend, {} rank{} on {} host{} ({}{})", w->comm_->backend(), w->size_,
                                w->size_ == 1 ? "" : "s", distinct.size(), distinct.size() == 1 ? "" : "s",
                                w->launch_.how, detail);
  log::set_rank(w->rank_, w->size_);
  return w;
}

void World::finalize() {
  if (finalized_) return;
  finalized_ = true;
  switch (launch_.kind) {
    case LaunchKind::Single:
      break;
    case LaunchKind::Mpi:
      comm_.reset();
      mpi_finalize();
      break;
    case LaunchKind::Env:
      store_->close();
      if (server_) server_->shutdown(timeout_);
      {
        std::lock_guard<std::mutex> lock(job().mu);
        job().store.reset();
        job().server = nullptr;
      }
      comm_.reset();
      store_.reset();
      server_.reset();
      break;
  }
}

World::~World() {
  if (finalized_) return;
  if (std::uncaught_exceptions() > 0) {
    // Failing: no goodbye. The store, its server and the communicators stay alive (deliberately
    // leaked) so that the catch handler's abort_job can still tell the peers why; the process
    // ends right after, and then the peers see this rank lost in any case.
    (void)server_.release();
    (void)new std::shared_ptr<StoreClient>(std::move(store_));
    (void)new CommPtr(std::move(comm_));
    return;
  }
  try {
    finalize();
  } catch (const std::exception& e) {
    log::error("finalizing the communicators: {}", e.what());
  }
}

void abort_job(int code, const std::string& message) {
  log::error("{}", message);
  std::shared_ptr<StoreClient> store;
  StoreServer* server;
  LaunchKind kind;
  int rank;
  {
    std::lock_guard<std::mutex> lock(job().mu);
    kind = job().kind;
    store = job().store.lock();
    server = job().server;
    rank = job().rank;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  // Rank 0 serves the store: tell the others directly, its server ends with this process.
  if (server)
    server->announce_failure(rank, message);
  else if (store)
    store->announce_failure(message);
  if (kind == LaunchKind::Mpi && mpi_active()) mpi_abort(code);
  std::_Exit(code);
}

}  // namespace fm::comm
