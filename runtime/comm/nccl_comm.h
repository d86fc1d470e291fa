// NCCL backend: the Communicator contract over GPU memory, one NCCL communicator per group.
//
// Creation: rank 0 of the bootstrap communicator (the MPI or Gloo world, or a group of it) makes the
// NCCL unique id and broadcasts it over that communicator; every member then joins with
// ncclCommInitRankConfig in NCCL's non-blocking mode, so joining, like every later wait, is polled
// against the communicator's timeout. new_group makes a CPU group of the same members through the
// bootstrap communicator (its new_group contract: members only) and a fresh NCCL communicator over it.
//
// Streams: operations run on a communication stream of their own. Before each one the stream waits
// (on the device) for an event recorded on the compute stream (set_compute_stream: the CudaOps
// stream), so a collective reads what the kernels enqueued before it wrote. Without a compute
// stream, each operation synchronizes the device first. The blocking calls (all_reduce, ...,
// send, recv, barrier) return when the operation has completed on the device, so its result can
// be used by anything enqueued afterwards. The *_async calls return at once with a Request; after
// compute_waits() the compute stream sees every collective enqueued so far: gradient reduction can
// overlap the rest of backward that way. Point-to-point messages complete through their Requests.
//
// Memory: device buffers go through NCCL. A call whose buffers are all host memory (a loss sum, a
// flag) is handed to the bootstrap communicator, so one object serves the trainer's host scalars
// and device tensors; every rank must then pass host memory for that call. Mixing host and device
// buffers in one call is an internal error.
//
// Point to point: each pair of ranks that exchanges device messages gets two NCCL communicators of
// its own, one per direction, each on its own stream, joined at the pair's first device isend/irecv
// (in either direction: that first call blocks until the peer makes its own first call with this
// rank; the lower rank sends the two unique ids over the bootstrap communicator, on the reserved tag
// kMaxTag; a rank that makes its first contacts in ascending peer order cannot deadlock there, and
// the pipeline executor's receives, posted first and previous stage first, do). So a send and a receive between two ranks never wait for each other, receives may be
// posted early, and every Request completes on its own. NCCL matches the messages of one direction
// in the order they are posted, whatever the tag: tags are checked but not used to match, so a
// program must post its messages of one direction in the same order on both sides (the pipeline
// executor does: one direction carries activations only, the other gradients only).
//
// Failures: a wait that outlasts timeout() aborts the NCCL communicator (ncclCommAbort) and throws
// fm::RuntimeFault naming this rank, the operation, the group and the peer (for point to point);
// an asynchronous NCCL error (a peer's process died, a network fault) does the same as soon as it
// is seen. After that the communicator is unusable, as the Communicator contract says.
//
// One-rank groups: Communicator::all_reduce and friends copy a one-rank group's buffers with the
// host memcpy, which cannot touch device memory; call the *_async forms (which copy on the device)
// or use in == out for them. new_group of one member returns the host-only single group.
#pragma once

#include "runtime/comm/communicator.h"

namespace fm::comm {

class NcclCommunicator : public Communicator {
 public:
  virtual int device() const = 0;
  // The stream (a cudaStream_t) whose earlier work every operation waits for; nullptr: none.
  virtual void set_compute_stream(void* stream) = 0;
  virtual void* comm_stream() const = 0;

  // Enqueue without waiting; buffers must stay untouched until the Request completes (or, on the
  // device side, until compute_waits() has ordered the compute stream after them).
  virtual Request all_reduce_async(const void* in, void* out, size_t count, DType t, ReduceOp op) = 0;
  virtual Request reduce_scatter_async(const void* in, void* out, size_t block, DType t, ReduceOp op) = 0;
  virtual Request all_gather_async(const void* in, void* out, size_t block, DType t) = 0;
  // The compute stream waits, on the device, for everything enqueued on the communication stream so far.
  virtual void compute_waits() = 0;

 protected:
  using Communicator::Communicator;
};

// The NCCL communicator over the members of `bootstrap_world` (collective over them), on `device`
// (make it the calling thread's current device first: select_cuda_device / make_cuda_ops).
// Throws fm::RuntimeFault when a member does not join within `timeout` or NCCL fails.
CommPtr make_nccl_communicator(const CommPtr& bootstrap_world, int device, Millis timeout = kDefaultTimeout);

// The NcclCommunicator behind a communicator, or nullptr for another backend.
NcclCommunicator* as_nccl(Communicator& comm);

}  // namespace fm::comm
