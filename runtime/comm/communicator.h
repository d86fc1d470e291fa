// Communicator: a group of ranks and the collectives and point-to-point messages between them.
//
// Contract (every backend: MPI, Gloo, the single-process world, later NCCL):
//  - Buffers are raw pointers + element count + DType (host memory on the CPU backends, device
//    memory on a GPU backend). Counts are in elements. A zero count is valid everywhere.
//  - Ranks given to an operation (peer, root) are ranks within this communicator (0..size()-1);
//    global_rank() maps them to world ranks. Error messages always name world ranks.
//  - Collectives must be called by every member, in the same order, with the same counts.
//    Point-to-point messages between two ranks with the same tag arrive in the order they were
//    sent. A send may block until the receiver posts the matching recv, so pair sends and recvs
//    (or use isend/irecv) to avoid deadlocks. A rank never sends to itself.
//  - Every blocking call and every Request::wait ends within timeout() (per communicator, default
//    300 s): on expiry it throws fm::RuntimeFault naming this rank, the operation, the group and
//    the rank(s) it was waiting for. Where liveness is tracked (the Gloo backend) a lost peer ends
//    the wait within seconds with a RuntimeFault naming the lost rank.
//  - After a RuntimeFault the communicator is unusable: the program should end (abort_job in
//    runtime/comm/bootstrap.h), never retry.
//  - Not thread-safe: one thread drives a communicator (Requests may be waited from that thread).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/comm/types.h"

namespace fm::comm {

using Millis = std::chrono::milliseconds;
inline constexpr Millis kDefaultTimeout{300'000};

// A pending isend/irecv. Movable, not copyable. Destroying a request that has not completed
// abandons it (its buffer must then stay untouched until the program ends): wait first.
class Request {
 public:
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual bool test() = 0;  // true once complete; throws RuntimeFault on failure
    virtual void wait() = 0;  // blocks until complete or the communicator's timeout
  };

  Request() = default;  // an already-complete request
  explicit Request(std::unique_ptr<Impl> impl);
  Request(Request&&) noexcept;
  Request& operator=(Request&&) noexcept;
  ~Request();

  bool test();
  void wait();
  bool done() const { return impl_ == nullptr; }

 private:
  std::unique_ptr<Impl> impl_;
};

void wait_all(std::span<Request> requests);

class Communicator : public std::enable_shared_from_this<Communicator> {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return static_cast<int>(global_ranks_.size()); }
  const std::string& name() const { return name_; }
  virtual const char* backend() const = 0;  // "mpi", "gloo", "single"

  int world_rank() const { return global_ranks_[rank_]; }
  int global_rank(int group_rank) const;
  const std::vector<int>& global_ranks() const { return global_ranks_; }
  int group_rank_of(int global_rank) const;  // -1 when not a member

  Millis timeout() const { return timeout_; }
  void set_timeout(Millis t);

  // How a one-rank group moves data between its own buffers (its collectives are copies): memcpy
  // for host memory; a GPU backend sets a device-aware copy. Sub-groups of one rank inherit it.
  using LocalCopy = std::function<void(void* out, const void* in, size_t bytes)>;
  void set_local_copy(LocalCopy copy) { local_copy_ = std::move(copy); }

  // ---- collectives -----------------------------------------------------------------------------
  // out = op over ranks of in; in == out is in place, other overlaps are not allowed.
  void all_reduce(const void* in, void* out, size_t count, DType t, ReduceOp op);
  void all_reduce(void* buf, size_t count, DType t, ReduceOp op) { all_reduce(buf, buf, count, t, op); }
  // in holds size() blocks of `block` elements; out (block elements) = op over ranks of block
  // rank(). out may be in + rank()*block (the rank's own block, in place).
  void reduce_scatter(const void* in, void* out, size_t block, DType t, ReduceOp op);
  // out (size() blocks) = every rank's in (block elements) in rank order. in may be
  // out + rank()*block (in place).
  void all_gather(const void* in, void* out, size_t block, DType t);
  void broadcast(void* buf, size_t count, DType t, int root);
  void barrier();

  // ---- point to point (tag in [0, kMaxTag]) ----------------------------------------------------
  static constexpr int kMaxTag = 32767;
  void send(const void* buf, size_t count, DType t, int peer, int tag = 0);
  void recv(void* buf, size_t count, DType t, int peer, int tag = 0);
  Request isend(const void* buf, size_t count, DType t, int peer, int tag = 0);
  Request irecv(void* buf, size_t count, DType t, int peer, int tag = 0);

  // A sub-group of this communicator's members, given as world ranks; the list order defines
  // the new ranks. Every listed rank must call it (collectively, in the same order as its other
  // new_group calls); a caller not in the list gets nullptr and communicates nothing.
  // `name` appears in error messages ("pipeline" -> "(pipeline group)").
  std::shared_ptr<Communicator> new_group(const std::vector<int>& world_ranks, const std::string& name);

  // ---- typed helpers ---------------------------------------------------------------------------
  template <typename T>
  void all_reduce(std::span<T> x, ReduceOp op = ReduceOp::Sum) {
    all_reduce(x.data(), x.size(), dtype_of<std::remove_const_t<T>>(), op);
  }
  template <typename T>
  T all_reduce_value(T v, ReduceOp op = ReduceOp::Sum) {
    all_reduce(&v, 1, dtype_of<T>(), op);
    return v;
  }

  // "pipeline group" / "world": the phrase error messages use.
  std::string group_label() const;
  // "ranks 0,2,4,6" (shortened for large groups).
  std::string members_label() const;

 protected:
  Communicator(int rank, std::vector<int> global_ranks, std::string name, Millis timeout);

  virtual void do_all_reduce(const void* in, void* out, size_t count, DType t, ReduceOp op) = 0;
  virtual void do_reduce_scatter(const void* in, void* out, size_t block, DType t, ReduceOp op) = 0;
  virtual void do_all_gather(const void* in, void* out, size_t block, DType t) = 0;
  virtual void do_broadcast(void* buf, size_t count, DType t, int root) = 0;
  virtual void do_barrier() = 0;
  // `op` ("send", "isend", ...) is what timeouts and failures name.
  virtual Request do_isend(const void* buf, size_t bytes, int peer, int tag, const char* op) = 0;
  virtual Request do_irecv(void* buf, size_t bytes, int peer, int tag, const char* op) = 0;
  virtual std::shared_ptr<Communicator> do_new_group(const std::vector<int>& world_ranks,
                                                     const std::string& name) = 0;

  // Messages shared by the backends (world ranks in the text).
  std::string prefix() const;  // "rank 2: "
  void copy_local(void* out, const void* in, size_t bytes) const;  // the one-rank collectives' copy
  std::string p2p_label(const char* op, int peer) const;  // "recv from rank 1 (pipeline group)"
  std::string timeout_message(const std::string& what, const std::vector<int>& waiting_for) const;
  [[noreturn]] void throw_timeout(const std::string& what, const std::vector<int>& waiting_for) const;

 private:
  int rank_;
  std::vector<int> global_ranks_;
  std::string name_;
  Millis timeout_;
  LocalCopy local_copy_;
};

using CommPtr = std::shared_ptr<Communicator>;

// "300 s", "0.5 s".
std::string format_seconds(Millis t);

// The world of one process: collectives are copies, no messages, nothing to wait for.
CommPtr make_single_communicator(Millis timeout = kDefaultTimeout);
// A one-rank group of a larger world (what new_group returns for a single member).
CommPtr make_single_group(int world_rank, const std::string& name, Millis timeout);

}  // namespace fm::comm
