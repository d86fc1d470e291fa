// Gloo backend (libgloo, tcp transport) for ranks started by environment variables.
//
// Ranks meet through our rendezvous store (runtime/comm/store.h), adapted to
// gloo::rendezvous::Store with a key prefix per group (world, then "<members>#<n>" for the n-th
// group over the same members), so sub-groups never collide; each run has a fresh store. Every
// group is a full mesh of Gloo pairs. The collectives are ring (reduce_scatter, all_gather,
// all_reduce = both), binomial-tree (broadcast) and dissemination (barrier) algorithms over Gloo
// unbound buffers, so every wait is ours: bounded by the communicator timeout, ended early when
// the store reports a lost rank, and turned into a RuntimeFault naming the peer. Every rank gets
// bit-identical all_reduce results. Gloo exceptions (IoException, EnforceNotMet) never escape.
// The tcp device binds to this host's address on the route to the store, or to the interface in
// GLOO_SOCKET_IFNAME. SIGPIPE is ignored once this backend starts (a dead peer's socket must
// give an error, not kill the process).
#pragma once

#include <memory>

#include "runtime/comm/communicator.h"

namespace fm::comm {

class StoreClient;

CommPtr make_gloo_world(std::shared_ptr<StoreClient> store, Millis timeout = kDefaultTimeout);

}  // namespace fm::comm
