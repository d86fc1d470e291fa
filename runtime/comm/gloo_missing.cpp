// Built when libgloo is absent: the environment-variable path then reports what to install.
#include "runtime/base/error.h"
#include "runtime/comm/gloo_comm.h"
#include "runtime/comm/store.h"

namespace fm::comm {

CommPtr make_gloo_world(std::shared_ptr<StoreClient> store, Millis timeout) {
  if (store->world_size() == 1) return make_single_group(0, "world", timeout);
  throw InputError("RANK", "ranks started by environment variables need the Gloo backend, and this build has none",
                   "install libgloo-dev and rebuild, or start the job with mpirun / srun --mpi=pmix");
}

}  // namespace fm::comm
