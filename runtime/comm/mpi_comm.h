// Open MPI backend.
//
// Every blocking operation is a non-blocking MPI call (MPI_Iallreduce, MPI_Ireduce_scatter_block,
// MPI_Iallgather, MPI_Ibcast, MPI_Ibarrier, MPI_Isend/Irecv) completed by a polling wait with a
// deadline, so a missing peer becomes a RuntimeFault naming the group instead of a hang. The wait
// backs off to short sleeps: ranks are often oversubscribed and idle waits must not burn a core.
// MPI errors are returned (MPI_ERRORS_RETURN), never silently fatal, and become RuntimeFaults.
// Liveness: when a process dies, mpirun (and srun with --kill-on-bad-exit) ends the whole job.
#pragma once

#include <string>

#include "runtime/comm/communicator.h"

namespace fm::comm {

struct MpiInfo {
  int provided_thread_level = 0;
  std::string thread_level;  // "MPI_THREAD_MULTIPLE", ...
  std::string library;       // first line of MPI_Get_library_version
  int world_rank = 0, world_size = 1;
  int local_rank = 0, local_size = 1;  // from MPI_COMM_TYPE_SHARED
};

// Initialises MPI once per process (MPI_Init_thread asking for MPI_THREAD_MULTIPLE) with errors
// returned; later calls return the same information. Works without mpirun (a singleton world).
const MpiInfo& mpi_init();
bool mpi_active();  // initialised and not finalised
void mpi_finalize();
[[noreturn]] void mpi_abort(int code);

// The world communicator (a duplicate of MPI_COMM_WORLD). Requires mpi_init().
CommPtr make_mpi_world(Millis timeout = kDefaultTimeout);

}  // namespace fm::comm
