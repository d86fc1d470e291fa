#include "runtime/comm/nccl_comm.h"

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "runtime/base/error.h"
#include "runtime/base/log.h"

namespace fm::comm {
namespace {

using Clock = std::chrono::steady_clock;

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    case DType::U8: return ncclUint8;
  }
  return ncclUint8;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Max: return ncclMax;
    case ReduceOp::Min: return ncclMin;
  }
  return ncclSum;
}

void cuda_ok(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess)
    throw RuntimeFault(fmt::format("{}: {}: {}", what, cudaGetErrorName(e), cudaGetErrorString(e)));
}

// Short spins first (completions are often moments away), then growing sleeps up to half a
// millisecond so a waiting rank leaves the CPU to others.
class Backoff {
 public:
  void pause() {
    ++spins_;
    if (spins_ < 64) return;
    if (spins_ < 128) return std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    sleep_us_ = std::min(sleep_us_ * 2, 500);
  }

 private:
  int spins_ = 0;
  int sleep_us_ = 10;
};

enum class Memory { Host, Device };

Memory memory_of(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    return Memory::Host;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged ? Memory::Device : Memory::Host;
}

class NcclComm;

// A set of point-to-point operations issued as one NCCL group; its event completes with all of them.
struct P2pBatch {
  struct Op {
    bool send;
    void* buf;
    size_t bytes;
    int peer;
  };
  std::vector<Op> ops;
  cudaEvent_t done = nullptr;
  bool issued = false;
  ~P2pBatch() {
    if (done) cudaEventDestroy(done);
  }
};

class NcclComm final : public NcclCommunicator {
 public:
  NcclComm(CommPtr bootstrap, ncclComm_t comm, int device, int rank, std::vector<int> global_ranks, std::string name,
           Millis timeout)
      : NcclCommunicator(rank, std::move(global_ranks), std::move(name), timeout),
        bootstrap_(std::move(bootstrap)),
        comm_(comm),
        device_(device) {
    activate();
    cuda_ok(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), prefix() + "cudaStreamCreate");
    cuda_ok(cudaMalloc(&barrier_word_, sizeof(int32_t)), prefix() + "cudaMalloc");
    cuda_ok(cudaMemset(barrier_word_, 0, sizeof(int32_t)), prefix() + "cudaMemset");
    batch_ = std::make_shared<P2pBatch>();
  }

  ~NcclComm() override {
    cudaSetDevice(device_);  // destructors do not throw: errors here end in abort_comm below
    if (!aborted_) {
      if (std::uncaught_exceptions() > 0) {
        ncclCommAbort(comm_);  // a failing program must not wait for peers here
      } else {
        finish();
      }
    }
    if (barrier_word_) cudaFree(barrier_word_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  const char* backend() const override { return "nccl"; }
  int device() const override { return device_; }
  void set_compute_stream(void* stream) override { compute_ = static_cast<cudaStream_t>(stream); }
  void* comm_stream() const override { return stream_; }

  Request all_reduce_async(const void* in, void* out, size_t count, DType t, ReduceOp op) override {
    FM_CHECK(dtype_reducible(t), "all_reduce_async: not a reducible type");
    const std::string what = collective_label("all_reduce", count, t);
    if (count == 0) return {};
    if (size() == 1) return local_copy(out, in, count * dtype_size(t), what);
    enqueue(what, [&] { return ncclAllReduce(in, out, count, nccl_type(t), nccl_op(op), comm_, stream_); });
    return completion(what);
  }
  Request reduce_scatter_async(const void* in, void* out, size_t block, DType t, ReduceOp op) override {
    FM_CHECK(dtype_reducible(t), "reduce_scatter_async: not a reducible type");
    const std::string what = collective_label("reduce_scatter", block * size(), t);
    if (block == 0) return {};
    if (size() == 1) return local_copy(out, in, block * dtype_size(t), what);
    enqueue(what, [&] { return ncclReduceScatter(in, out, block, nccl_type(t), nccl_op(op), comm_, stream_); });
    return completion(what);
  }
  Request all_gather_async(const void* in, void* out, size_t block, DType t) override {
    const std::string what = collective_label("all_gather", block * size(), t);
    if (block == 0) return {};
    if (size() == 1) return local_copy(out, in, block * dtype_size(t), what);
    enqueue(what, [&] { return ncclAllGather(in, out, block, nccl_type(t), comm_, stream_); });
    return completion(what);
  }
  void compute_waits() override {
    live();
    activate();
    flush();
    if (!compute_) {
      wait_event(record(prefix() + "compute_waits"), "waiting for the communication stream", {});
      return;
    }
    cudaEvent_t ev = record(prefix() + "compute_waits");
    const cudaError_t e = cudaStreamWaitEvent(compute_, ev, 0);
    cudaEventDestroy(ev);
    cuda_ok(e, prefix() + "cudaStreamWaitEvent");
  }

  // ---- used by NcclRequest ------------------------------------------------------------------------
  // Polls `ev` until it completes, NCCL reports an error or the deadline passes (then aborts).
  void wait_until(cudaEvent_t ev, const std::string& what, const std::vector<int>& waiting_for,
                  Clock::time_point deadline) {
    Backoff backoff;
    for (;;) {
      const cudaError_t e = cudaEventQuery(ev);
      if (e == cudaSuccess) return;
      if (e != cudaErrorNotReady) cuda_ok(e, prefix() + what);
      check_async(what);
      if (Clock::now() >= deadline) {
        const std::string msg = timeout_message(what, waiting_for) + (waiting_for.empty() ? ", or did not call it" : "");
        abort_comm();
        throw RuntimeFault(msg + " (NCCL communicator aborted)");
      }
      backoff.pause();
    }
  }
  bool done(cudaEvent_t ev, const std::string& what) {
    const cudaError_t e = cudaEventQuery(ev);
    if (e == cudaSuccess) return true;
    if (e != cudaErrorNotReady) cuda_ok(e, prefix() + what);
    check_async(what);
    return false;
  }
  void flush_batch(const std::shared_ptr<P2pBatch>& b) {
    if (!b->issued) flush();
  }
  void activate() const { cuda_ok(cudaSetDevice(device_), prefix() + "cudaSetDevice"); }

 protected:
  void do_all_reduce(const void* in, void* out, size_t count, DType t, ReduceOp op) override {
    if (host_call(in, out)) return bootstrap_->all_reduce(in, out, count, t, op);
    const std::string what = collective_label("all_reduce", count, t);
    enqueue(what, [&] { return ncclAllReduce(in, out, count, nccl_type(t), nccl_op(op), comm_, stream_); });
    wait_event(record(what), what, {});
  }
  void do_reduce_scatter(const void* in, void* out, size_t block, DType t, ReduceOp op) override {
    if (host_call(in, out)) return bootstrap_->reduce_scatter(in, out, block, t, op);
    const std::string what = collective_label("reduce_scatter", block * size(), t);
    enqueue(what, [&] { return ncclReduceScatter(in, out, block, nccl_type(t), nccl_op(op), comm_, stream_); });
    wait_event(record(what), what, {});
  }
  void do_all_gather(const void* in, void* out, size_t block, DType t) override {
    if (host_call(in, out)) return bootstrap_->all_gather(in, out, block, t);
    const std::string what = collective_label("all_gather", block * size(), t);
    enqueue(what, [&] { return ncclAllGather(in, out, block, nccl_type(t), comm_, stream_); });
    wait_event(record(what), what, {});
  }
  void do_broadcast(void* buf, size_t count, DType t, int root) override {
    if (host_call(buf, buf)) return bootstrap_->broadcast(buf, count, t, root);
    const std::string what = fmt::format("broadcast of {} {} from rank {} ({}, {})", count, dtype_name(t),
                                         global_rank(root), group_label(), members_label());
    enqueue(what, [&] { return ncclBroadcast(buf, buf, count, nccl_type(t), root, comm_, stream_); });
    wait_event(record(what), what, {});
  }
  void do_barrier() override {
    const std::string what = fmt::format("barrier ({}, {})", group_label(), members_label());
    enqueue(what, [&] { return ncclAllReduce(barrier_word_, barrier_word_, 1, ncclInt32, ncclSum, comm_, stream_); });
    wait_event(record(what), what, {});
  }
  Request do_isend(const void* buf, size_t bytes, int peer, int tag, const char* op) override {
    if (memory_of(buf) == Memory::Host) return bootstrap_->isend(buf, bytes, DType::U8, peer, tag);
    return post(true, const_cast<void*>(buf), bytes, peer, op);
  }
  Request do_irecv(void* buf, size_t bytes, int peer, int tag, const char* op) override {
    if (memory_of(buf) == Memory::Host) return bootstrap_->irecv(buf, bytes, DType::U8, peer, tag);
    return post(false, buf, bytes, peer, op);
  }
  std::shared_ptr<Communicator> do_new_group(const std::vector<int>& world_ranks, const std::string& name) override;

 private:
  std::string collective_label(const char* op, size_t count, DType t) const {
    return fmt::format("{} of {} {} ({}, {})", op, count, dtype_name(t), group_label(), members_label());
  }

  void live() const {
    if (aborted_) throw RuntimeFault(prefix() + "the NCCL communicator of the " + group_label() + " was aborted");
  }

  // True when the call's buffers are host memory (handed to the bootstrap communicator).
  bool host_call(const void* in, const void* out) const {
    const Memory a = memory_of(in), b = memory_of(out);
    FM_CHECK(a == b, "NCCL communicator: one buffer is host memory and the other device memory");
    return a == Memory::Host;
  }

  // Orders the communication stream after the compute stream's work so far.
  void order_after_compute(const std::string& what) {
    if (!compute_) {
      cuda_ok(cudaDeviceSynchronize(), prefix() + what);
      return;
    }
    cudaEvent_t ev = nullptr;
    cuda_ok(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), prefix() + what);
    cudaError_t e = cudaEventRecord(ev, compute_);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(stream_, ev, 0);
    cudaEventDestroy(ev);
    cuda_ok(e, prefix() + what);
  }

  // Issues one NCCL call (or group) on the communication stream; in non-blocking mode the call may
  // still be in progress on return: poll until NCCL has enqueued it.
  void enqueue(const std::string& what, const std::function<ncclResult_t()>& call) {
    live();
    activate();
    flush();
    order_after_compute(what);
    settle(call(), what);
  }

  void settle(ncclResult_t r, const std::string& what) {
    const auto deadline = Clock::now() + timeout();
    Backoff backoff;
    while (r == ncclInProgress) {
      if (Clock::now() >= deadline) {
        const std::string msg = timeout_message(what + " (enqueueing)", {});
        abort_comm();
        throw RuntimeFault(msg + " (NCCL communicator aborted)");
      }
      backoff.pause();
      ncclCommGetAsyncError(comm_, &r);
    }
    if (r != ncclSuccess) fail(r, what);
  }

  void check_async(const std::string& what) {
    ncclResult_t r = ncclSuccess;
    ncclCommGetAsyncError(comm_, &r);
    if (r != ncclSuccess && r != ncclInProgress) fail(r, what);
  }

  [[noreturn]] void fail(ncclResult_t r, const std::string& what) {
    const char* last = ncclGetLastError(comm_);
    std::string msg = fmt::format("{}{} failed: NCCL {}{}", prefix(), what, ncclGetErrorString(r),
                                  last && *last ? std::string(": ") + last : std::string());
    if (r == ncclRemoteError || r == ncclSystemError) msg += " — a peer probably died or its network failed";
    abort_comm();
    throw RuntimeFault(msg + " (NCCL communicator aborted)");
  }

  void abort_comm() {
    if (aborted_) return;
    aborted_ = true;
    ncclCommAbort(comm_);
  }

  cudaEvent_t record(const std::string& what) {
    cudaEvent_t ev = nullptr;
    cuda_ok(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), prefix() + what);
    const cudaError_t e = cudaEventRecord(ev, stream_);
    if (e != cudaSuccess) cudaEventDestroy(ev);
    cuda_ok(e, prefix() + what);
    return ev;
  }

  // Waits for `ev` (then destroys it) within the timeout.
  void wait_event(cudaEvent_t ev, const std::string& what, const std::vector<int>& waiting_for) {
    try {
      wait_until(ev, what, waiting_for, Clock::now() + timeout());
    } catch (...) {
      cudaEventDestroy(ev);
      throw;
    }
    cudaEventDestroy(ev);
  }

  std::shared_ptr<NcclComm> self() { return std::static_pointer_cast<NcclComm>(shared_from_this()); }
  Request completion(const std::string& what);
  Request local_copy(void* out, const void* in, size_t bytes, const std::string& what) {
    live();
    activate();
    order_after_compute(what);
    if (out != in) cuda_ok(cudaMemcpyAsync(out, in, bytes, cudaMemcpyDeviceToDevice, stream_), prefix() + what);
    return completion(what);
  }

  Request post(bool send, void* buf, size_t bytes, int peer, const char* op);

  // Issues the collected point-to-point operations as one NCCL group.
  void flush() {
    if (batch_->ops.empty()) return;
    std::shared_ptr<P2pBatch> b = std::move(batch_);
    batch_ = std::make_shared<P2pBatch>();
    const std::string what = fmt::format("point-to-point group of {} operation{} ({})", b->ops.size(),
                                         b->ops.size() == 1 ? "" : "s", group_label());
    order_after_compute(what);
    ncclResult_t r = ncclGroupStart();
    if (r == ncclSuccess) {
      for (const auto& op : b->ops) {
        r = op.send ? ncclSend(op.buf, op.bytes, ncclUint8, op.peer, comm_, stream_)
                    : ncclRecv(op.buf, op.bytes, ncclUint8, op.peer, comm_, stream_);
        if (r != ncclSuccess && r != ncclInProgress) break;
      }
      const ncclResult_t end = ncclGroupEnd();
      if (r == ncclSuccess || r == ncclInProgress) r = end;
    }
    settle(r, what);
    b->done = record(what);
    b->issued = true;
  }

  // Clean end: completes the communication stream within the timeout, then finalizes NCCL.
  void finish() {
    try {
      flush();
      wait_event(record("closing the communicator"), "closing the communicator", {});
      settle(ncclCommFinalize(comm_), "ncclCommFinalize");
      ncclCommDestroy(comm_);
    } catch (const std::exception& e) {
      // Destructors do not throw: say what happened; the communicator is aborted either way.
      log::warn("{}closing the NCCL communicator of the {}: {}", prefix(), group_label(), e.what());
      abort_comm();
    }
  }

  CommPtr bootstrap_;
  ncclComm_t comm_ = nullptr;
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cudaStream_t compute_ = nullptr;
  void* barrier_word_ = nullptr;
  bool aborted_ = false;
  std::shared_ptr<P2pBatch> batch_;
};

// A collective's completion event, or a point-to-point batch (flushed at the first test or wait).
class NcclRequest final : public Request::Impl {
 public:
  NcclRequest(std::shared_ptr<NcclComm> comm, std::shared_ptr<P2pBatch> batch, cudaEvent_t own, std::string what,
              std::vector<int> waiting_for)
      : comm_(std::move(comm)),
        batch_(std::move(batch)),
        own_(own),
        what_(std::move(what)),
        waiting_for_(std::move(waiting_for)) {}
  ~NcclRequest() override {
    if (own_) cudaEventDestroy(own_);
  }

  bool test() override {
    comm_->activate();
    if (batch_) comm_->flush_batch(batch_);
    return comm_->done(event(), what_);
  }
  void wait() override {
    comm_->activate();
    if (batch_) comm_->flush_batch(batch_);
    comm_->wait_until(event(), what_, waiting_for_, Clock::now() + comm_->timeout());
  }

 private:
  cudaEvent_t event() const { return batch_ ? batch_->done : own_; }

  std::shared_ptr<NcclComm> comm_;
  std::shared_ptr<P2pBatch> batch_;
  cudaEvent_t own_ = nullptr;
  std::string what_;
  std::vector<int> waiting_for_;
};

Request NcclComm::completion(const std::string& what) {
  return Request(std::make_unique<NcclRequest>(self(), nullptr, record(what), what, std::vector<int>{}));
}

Request NcclComm::post(bool send, void* buf, size_t bytes, int peer, const char* op) {
  live();
  batch_->ops.push_back({send, buf, bytes, peer});
  return Request(std::make_unique<NcclRequest>(self(), batch_, nullptr, p2p_label(op, peer),
                                               std::vector<int>{peer}));
}

// Joins an NCCL communicator over the members of `bootstrap` with the id its rank 0 made.
std::shared_ptr<NcclComm> connect(const CommPtr& bootstrap, int device, Millis timeout, const std::string& name) {
  const std::string who = fmt::format("rank {}: ", bootstrap->world_rank());
  const std::string label = name == "world" ? std::string("world") : name + " group";
  cuda_ok(cudaSetDevice(device), who + "cudaSetDevice");
  ncclUniqueId id{};
  if (bootstrap->rank() == 0) {
    const ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess)
      throw RuntimeFault(fmt::format("{}ncclGetUniqueId failed: {}", who, ncclGetErrorString(r)));
  }
  bootstrap->broadcast(&id, sizeof(id), DType::U8, 0);

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  ncclResult_t r = ncclCommInitRankConfig(&comm, bootstrap->size(), id, bootstrap->rank(), &config);
  const auto deadline = Clock::now() + timeout;
  Backoff backoff;
  while (r == ncclInProgress) {
    if (Clock::now() >= deadline) {
      ncclCommAbort(comm);
      throw RuntimeFault(fmt::format("{}joining the NCCL communicator of the {} ({}) timed out after {} — a member "
                                     "did not join or cannot be reached",
                                     who, label, bootstrap->members_label(), format_seconds(timeout)));
    }
    backoff.pause();
    ncclCommGetAsyncError(comm, &r);
  }
  if (r != ncclSuccess) {
    const char* last = ncclGetLastError(comm);
    if (comm) ncclCommAbort(comm);
    throw RuntimeFault(fmt::format("{}creating the NCCL communicator of the {} on device {} failed: {}{}", who, label,
                                   device, ncclGetErrorString(r), last && *last ? std::string(": ") + last : ""));
  }
  return std::make_shared<NcclComm>(bootstrap, comm, device, bootstrap->rank(), bootstrap->global_ranks(), name,
                                    timeout);
}

std::shared_ptr<Communicator> NcclComm::do_new_group(const std::vector<int>& world_ranks, const std::string& name) {
  live();
  activate();
  flush();
  CommPtr cpu_group = bootstrap_->new_group(world_ranks, name);
  FM_CHECK(cpu_group != nullptr, "new_group: the bootstrap communicator left out a listed rank");
  return connect(cpu_group, device_, timeout(), name);
}

}  // namespace

CommPtr make_nccl_communicator(const CommPtr& bootstrap_world, int device, Millis timeout) {
  FM_CHECK(bootstrap_world != nullptr, "make_nccl_communicator: no bootstrap communicator");
  return connect(bootstrap_world, device, timeout, bootstrap_world->name());
}

NcclCommunicator* as_nccl(Communicator& comm) { return dynamic_cast<NcclCommunicator*>(&comm); }

}  // namespace fm::comm
