#include "runtime/comm/nccl_comm.h"

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "runtime/base/error.h"
#include "runtime/base/log.h"

namespace fm::comm {
namespace {

using Clock = std::chrono::steady_clock;

// The bootstrap tag that carries the unique ids of point-to-point pair communicators.
constexpr int kPairIdTag = Communicator::kMaxTag;

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

// Starts joining an NCCL communicator in non-blocking mode; finish with wait_joined.
ncclComm_t start_join(int nranks, const ncclUniqueId& id, int rank, const std::string& what) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  const ncclResult_t r = ncclCommInitRankConfig(&comm, nranks, id, rank, &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    if (comm) ncclCommAbort(comm);
    throw RuntimeFault(fmt::format("{} failed: {}", what, ncclGetErrorString(r)));
  }
  return comm;
}

// Polls the communicators until every one has joined; on timeout or error aborts them all.
void wait_joined(const std::vector<ncclComm_t>& comms, Clock::time_point deadline, const std::string& what,
                 const std::string& on_timeout) {
  Backoff backoff;
  for (;;) {
    bool all_done = true;
    for (ncclComm_t c : comms) {
      ncclResult_t r = ncclSuccess;
      ncclCommGetAsyncError(c, &r);
      if (r == ncclInProgress) {
        all_done = false;
      } else if (r != ncclSuccess) {
        const char* last = ncclGetLastError(c);
        for (ncclComm_t d : comms) ncclCommAbort(d);
        throw RuntimeFault(fmt::format("{} failed: {}{}", what, ncclGetErrorString(r),
                                       last && *last ? std::string(": ") + last : std::string()));
      }
    }
    if (all_done) return;
    if (Clock::now() >= deadline) {
      for (ncclComm_t d : comms) ncclCommAbort(d);
      throw RuntimeFault(on_timeout);
    }
    backoff.pause();
  }
}

// The two NCCL communicators of one peer, one per direction, each with its own stream: a send and
// a receive between the same two ranks never wait for each other, and every operation completes
// on its own event.
struct Pair {
  ncclComm_t to_peer = nullptr;    // 2 ranks: this rank is 0, the peer 1
  ncclComm_t from_peer = nullptr;  // 2 ranks: the peer is 0, this rank 1
  cudaStream_t send_stream = nullptr, recv_stream = nullptr;
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
  }

  ~NcclComm() override {
    cudaSetDevice(device_);  // destructors do not throw: errors here end in abort_all below
    if (!aborted_) {
      if (std::uncaught_exceptions() > 0) {
        abort_all();  // a failing program must not wait for peers here
      } else {
        finish();
      }
    }
    for (auto& [peer, p] : pairs_) {
      if (p.send_stream) cudaStreamDestroy(p.send_stream);
      if (p.recv_stream) cudaStreamDestroy(p.recv_stream);
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
    enqueue(what, stream_, [&] { return ncclAllReduce(in, out, count, nccl_type(t), nccl_op(op), comm_, stream_); });
    return completion(stream_, what, {});
  }
  Request reduce_scatter_async(const void* in, void* out, size_t block, DType t, ReduceOp op) override {
    FM_CHECK(dtype_reducible(t), "reduce_scatter_async: not a reducible type");
    const std::string what = collective_label("reduce_scatter", block * size(), t);
    if (block == 0) return {};
    if (size() == 1) return local_copy(out, in, block * dtype_size(t), what);
    enqueue(what, stream_,
            [&] { return ncclReduceScatter(in, out, block, nccl_type(t), nccl_op(op), comm_, stream_); });
    return completion(stream_, what, {});
  }
  Request all_gather_async(const void* in, void* out, size_t block, DType t) override {
    const std::string what = collective_label("all_gather", block * size(), t);
    if (block == 0) return {};
    if (size() == 1) return local_copy(out, in, block * dtype_size(t), what);
    enqueue(what, stream_, [&] { return ncclAllGather(in, out, block, nccl_type(t), comm_, stream_); });
    return completion(stream_, what, {});
  }
  void compute_waits() override {
    live();
    activate();
    cudaEvent_t ev = record(stream_, prefix() + "compute_waits");
    if (!compute_) {
      wait_event(ev, "waiting for the communication stream", {});
      return;
    }
    const cudaError_t e = cudaStreamWaitEvent(compute_, ev, 0);
    cudaEventDestroy(ev);
    cuda_ok(e, prefix() + "cudaStreamWaitEvent");
  }

  // ---- used by NcclRequest ------------------------------------------------------------------------
  // Polls `ev` until it completes, NCCL reports an error or the deadline passes (then aborts).
  void wait_until(cudaEvent_t ev, const std::string& what, const std::vector<int>& waiting_for,
                  Clock::time_point deadline) {
    Backoff backoff;
    while (!done(ev, what)) {
      if (Clock::now() >= deadline) {
        const std::string msg = timeout_message(what, waiting_for) + (waiting_for.empty() ? ", or did not call it" : "");
        abort_all();
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
  void activate() const { cuda_ok(cudaSetDevice(device_), prefix() + "cudaSetDevice"); }

 protected:
  void do_all_reduce(const void* in, void* out, size_t count, DType t, ReduceOp op) override {
    if (host_call(in, out)) return bootstrap_->all_reduce(in, out, count, t, op);
    const std::string what = collective_label("all_reduce", count, t);
    enqueue(what, stream_, [&] { return ncclAllReduce(in, out, count, nccl_type(t), nccl_op(op), comm_, stream_); });
    wait_event(record(stream_, what), what, {});
  }
  void do_reduce_scatter(const void* in, void* out, size_t block, DType t, ReduceOp op) override {
    if (host_call(in, out)) return bootstrap_->reduce_scatter(in, out, block, t, op);
    const std::string what = collective_label("reduce_scatter", block * size(), t);
    enqueue(what, stream_,
            [&] { return ncclReduceScatter(in, out, block, nccl_type(t), nccl_op(op), comm_, stream_); });
    wait_event(record(stream_, what), what, {});
  }
  void do_all_gather(const void* in, void* out, size_t block, DType t) override {
    if (host_call(in, out)) return bootstrap_->all_gather(in, out, block, t);
    const std::string what = collective_label("all_gather", block * size(), t);
    enqueue(what, stream_, [&] { return ncclAllGather(in, out, block, nccl_type(t), comm_, stream_); });
    wait_event(record(stream_, what), what, {});
  }
  void do_broadcast(void* buf, size_t count, DType t, int root) override {
    if (host_call(buf, buf)) return bootstrap_->broadcast(buf, count, t, root);
    const std::string what = fmt::format("broadcast of {} {} from rank {} ({}, {})", count, dtype_name(t),
                                         global_rank(root), group_label(), members_label());
    enqueue(what, stream_, [&] { return ncclBroadcast(buf, buf, count, nccl_type(t), root, comm_, stream_); });
    wait_event(record(stream_, what), what, {});
  }
  void do_barrier() override {
    const std::string what = fmt::format("barrier ({}, {})", group_label(), members_label());
    enqueue(what, stream_,
            [&] { return ncclAllReduce(barrier_word_, barrier_word_, 1, ncclInt32, ncclSum, comm_, stream_); });
    wait_event(record(stream_, what), what, {});
  }
  Request do_isend(const void* buf, size_t bytes, int peer, int tag, const char* op) override {
    if (memory_of(buf) == Memory::Host) return host_p2p(true, const_cast<void*>(buf), bytes, peer, tag);
    const std::string what = p2p_label(op, peer);
    Pair& p = pair(peer);
    enqueue(what, p.send_stream, [&] { return ncclSend(buf, bytes, ncclUint8, 1, p.to_peer, p.send_stream); });
    return completion(p.send_stream, what, {peer});
  }
  Request do_irecv(void* buf, size_t bytes, int peer, int tag, const char* op) override {
    if (memory_of(buf) == Memory::Host) return host_p2p(false, buf, bytes, peer, tag);
    const std::string what = p2p_label(op, peer);
    Pair& p = pair(peer);
    enqueue(what, p.recv_stream, [&] { return ncclRecv(buf, bytes, ncclUint8, 0, p.from_peer, p.recv_stream); });
    return completion(p.recv_stream, what, {peer});
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

  Request host_p2p(bool send, void* buf, size_t bytes, int peer, int tag) {
    FM_CHECK(tag != kPairIdTag, fmt::format("NCCL communicator: tag {} is reserved", kPairIdTag));
    return send ? bootstrap_->isend(buf, bytes, DType::U8, peer, tag) : bootstrap_->irecv(buf, bytes, DType::U8, peer, tag);
  }

  // The pair communicators of `peer`, joined on first use. Both ranks get here at their first
  // device point-to-point operation with each other (in either direction); the lower rank makes
  // both unique ids and sends them over the bootstrap communicator.
  Pair& pair(int peer) {
    auto it = pairs_.find(peer);
    if (it != pairs_.end()) return it->second;
    live();
    activate();
    const bool low = rank() < peer;
    ncclUniqueId ids[2]{};  // [0]: low -> high, [1]: high -> low
    const std::string label =
        fmt::format("joining the point-to-point channel with rank {} ({})", global_rank(peer), group_label());
    const std::string what = prefix() + label;
    if (low) {
      for (ncclUniqueId& id : ids) {
        const ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess) throw RuntimeFault(fmt::format("{}: ncclGetUniqueId: {}", what, ncclGetErrorString(r)));
      }
      bootstrap_->send(ids, sizeof(ids), DType::U8, peer, kPairIdTag);
    } else {
      bootstrap_->recv(ids, sizeof(ids), DType::U8, peer, kPairIdTag);
    }
    Pair p;
    // Direction low -> high uses ids[0] (low is rank 0), high -> low ids[1] (high is rank 0).
    const ncclComm_t low_to_high = start_join(2, ids[0], low ? 0 : 1, what);
    ncclComm_t high_to_low = nullptr;
    try {
      high_to_low = start_join(2, ids[1], low ? 1 : 0, what);
    } catch (...) {
      ncclCommAbort(low_to_high);
      throw;
    }
    wait_joined({low_to_high, high_to_low}, Clock::now() + timeout(), what,
                timeout_message(label, {peer}) + " (NCCL pair communicators aborted)");
    p.to_peer = low ? low_to_high : high_to_low;
    p.from_peer = low ? high_to_low : low_to_high;
    cuda_ok(cudaStreamCreateWithFlags(&p.send_stream, cudaStreamNonBlocking), what);
    cuda_ok(cudaStreamCreateWithFlags(&p.recv_stream, cudaStreamNonBlocking), what);
    return pairs_.emplace(peer, p).first->second;
  }

  // Makes `stream` wait for the compute stream's work so far (or the whole device without one).
  void order_after_compute(cudaStream_t stream, const std::string& what) {
    if (!compute_) {
      cuda_ok(cudaDeviceSynchronize(), prefix() + what);
      return;
    }
    cudaEvent_t ev = nullptr;
    cuda_ok(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), prefix() + what);
    cudaError_t e = cudaEventRecord(ev, compute_);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(stream, ev, 0);
    cudaEventDestroy(ev);
    cuda_ok(e, prefix() + what);
  }

  // Issues one NCCL call on `stream` after the compute stream's work; in non-blocking mode the call
  // may still be in progress on return: poll until NCCL has enqueued it.
  void enqueue(const std::string& what, cudaStream_t stream, const std::function<ncclResult_t()>& call) {
    live();
    activate();
    order_after_compute(stream, what);
    ncclResult_t r = call();
    const auto deadline = Clock::now() + timeout();
    Backoff backoff;
    while (r == ncclInProgress) {
      if (Clock::now() >= deadline) {
        const std::string msg = timeout_message(what + " (enqueueing)", {});
        abort_all();
        throw RuntimeFault(msg + " (NCCL communicator aborted)");
      }
      backoff.pause();
      r = any_async_error();
    }
    if (r != ncclSuccess) fail(r, what);
  }

  // The first error (or in-progress state) among this object's NCCL communicators.
  ncclResult_t any_async_error() {
    ncclResult_t worst = ncclSuccess;
    auto look = [&](ncclComm_t c) {
      ncclResult_t r = ncclSuccess;
      ncclCommGetAsyncError(c, &r);
      if (r != ncclSuccess && (worst == ncclSuccess || worst == ncclInProgress)) worst = r;
    };
    look(comm_);
    for (auto& [peer, p] : pairs_) {
      look(p.to_peer);
      look(p.from_peer);
    }
    return worst;
  }

  void check_async(const std::string& what) {
    const ncclResult_t r = any_async_error();
    if (r != ncclSuccess && r != ncclInProgress) fail(r, what);
  }

  [[noreturn]] void fail(ncclResult_t r, const std::string& what) {
    const char* last = ncclGetLastError(comm_);
    std::string msg = fmt::format("{}{} failed: NCCL {}{}", prefix(), what, ncclGetErrorString(r),
                                  last && *last ? std::string(": ") + last : std::string());
    if (r == ncclRemoteError || r == ncclSystemError) msg += " — a peer probably died or its network failed";
    abort_all();
    throw RuntimeFault(msg + " (NCCL communicator aborted)");
  }

  void abort_all() {
    if (aborted_) return;
    aborted_ = true;
    ncclCommAbort(comm_);
    for (auto& [peer, p] : pairs_) {
      ncclCommAbort(p.to_peer);
      ncclCommAbort(p.from_peer);
    }
  }

  cudaEvent_t record(cudaStream_t stream, const std::string& what) {
    cudaEvent_t ev = nullptr;
    cuda_ok(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), prefix() + what);
    const cudaError_t e = cudaEventRecord(ev, stream);
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
  Request completion(cudaStream_t stream, const std::string& what, std::vector<int> waiting_for);
  Request local_copy(void* out, const void* in, size_t bytes, const std::string& what) {
    live();
    activate();
    order_after_compute(stream_, what);
    if (out != in) cuda_ok(cudaMemcpyAsync(out, in, bytes, cudaMemcpyDeviceToDevice, stream_), prefix() + what);
    return completion(stream_, what, {});
  }

  // Clean end: completes every stream within the timeout, then finalizes the communicators.
  void finish() {
    try {
      wait_event(record(stream_, "closing the communicator"), "closing the communicator", {});
      for (auto& [peer, p] : pairs_) {
        wait_event(record(p.send_stream, "closing the communicator"), "closing the communicator", {peer});
        wait_event(record(p.recv_stream, "closing the communicator"), "closing the communicator", {peer});
      }
      std::vector<ncclComm_t> all = {comm_};
      for (auto& [peer, p] : pairs_) all.insert(all.end(), {p.to_peer, p.from_peer});
      for (ncclComm_t c : all) {
        const ncclResult_t r = ncclCommFinalize(c);
        if (r != ncclSuccess && r != ncclInProgress) fail(r, "ncclCommFinalize");
      }
      wait_joined(all, Clock::now() + timeout(), prefix() + "ncclCommFinalize",
                  prefix() + "closing the NCCL communicator of the " + group_label() + " timed out");
      for (ncclComm_t c : all) ncclCommDestroy(c);
      aborted_ = true;  // destroyed: nothing left to abort
    } catch (const std::exception& e) {
      // Destructors do not throw: say what happened; the communicators are aborted either way.
      log::warn("{}closing the NCCL communicator of the {}: {}", prefix(), group_label(), e.what());
      abort_all();
    }
  }

  CommPtr bootstrap_;
  ncclComm_t comm_ = nullptr;
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cudaStream_t compute_ = nullptr;
  void* barrier_word_ = nullptr;
  bool aborted_ = false;
  std::map<int, Pair> pairs_;  // by group rank of the peer
};

// The completion event of one operation.
class NcclRequest final : public Request::Impl {
 public:
  NcclRequest(std::shared_ptr<NcclComm> comm, cudaEvent_t event, std::string what, std::vector<int> waiting_for)
      : comm_(std::move(comm)), event_(event), what_(std::move(what)), waiting_for_(std::move(waiting_for)) {}
  ~NcclRequest() override { cudaEventDestroy(event_); }

  bool test() override {
    comm_->activate();
    return comm_->done(event_, what_);
  }
  void wait() override {
    comm_->activate();
    comm_->wait_until(event_, what_, waiting_for_, Clock::now() + comm_->timeout());
  }

 private:
  std::shared_ptr<NcclComm> comm_;
  cudaEvent_t event_;
  std::string what_;
  std::vector<int> waiting_for_;
};

Request NcclComm::completion(cudaStream_t stream, const std::string& what, std::vector<int> waiting_for) {
  return Request(std::make_unique<NcclRequest>(self(), record(stream, what), what, std::move(waiting_for)));
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
  const std::string what =
      fmt::format("{}creating the NCCL communicator of the {} on device {}", who, label, device);
  ncclComm_t comm = start_join(bootstrap->size(), id, bootstrap->rank(), what);
  wait_joined({comm}, Clock::now() + timeout, what,
              fmt::format("{}joining the NCCL communicator of the {} ({}) timed out after {} — a member did not join "
                          "or cannot be reached",
                          who, label, bootstrap->members_label(), format_seconds(timeout)));
  return std::make_shared<NcclComm>(bootstrap, comm, device, bootstrap->rank(), bootstrap->global_ranks(), name,
                                    timeout);
}

std::shared_ptr<Communicator> NcclComm::do_new_group(const std::vector<int>& world_ranks, const std::string& name) {
  live();
  activate();
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
