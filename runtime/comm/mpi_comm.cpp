#include "runtime/comm/mpi_comm.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <functional>
#include <thread>

#include "runtime/base/error.h"

namespace fm::comm {
namespace {

using Clock = std::chrono::steady_clock;

// Tags of ctrl_, the duplicate that carries our own handshakes (never user messages).
constexpr int kGroupArriveTag = 1;
constexpr int kGroupReleaseTag = 2;
constexpr int kCreateGroupTag = 7001;

MpiInfo g_info;
bool g_initialized_here = false;

std::string mpi_error_string(int rc) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS) return fmt::format("MPI error code {}", rc);
  return std::string(buf, static_cast<size_t>(len));
}

const char* thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE: return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED: return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED: return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE: return "MPI_THREAD_MULTIPLE";
  }
  return "unknown";
}

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
    case DType::BF16:
    case DType::F16: return MPI_UINT16_T;
    case DType::U8: return MPI_UINT8_T;
  }
  return MPI_BYTE;
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return MPI_SUM;
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
  }
  return MPI_SUM;
}

// Polls quickly first (a message is often about to land), then sleeps with growing pauses up to
// half a millisecond so an idle rank leaves the core to the ranks that compute.
class Backoff {
 public:
  void pause() {
    ++spins_;
    if (spins_ < 32) return;
    if (spins_ < 64) return std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    sleep_us_ = std::min(sleep_us_ * 2, 500);
  }

 private:
  int spins_ = 0;
  int sleep_us_ = 20;
};

int to_int_count(size_t n, const char* what) {
  FM_CHECK(n <= static_cast<size_t>(INT_MAX),
           fmt::format("{} of {} elements exceeds one MPI call (2^31-1); split it", what, n));
  return static_cast<int>(n);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, MPI_Comm ctrl, int rank, std::vector<int> global_ranks, std::string name,
                  Millis timeout)
      : Communicator(rank, std::move(global_ranks), std::move(name), timeout), comm_(comm), ctrl_(ctrl) {}

  ~MpiCommunicator() override {
    if (mpi_active()) {
      MPI_Comm_free(&comm_);
      MPI_Comm_free(&ctrl_);
    }
  }

  const char* backend() const override { return "mpi"; }

  void check(int rc, const std::string& what) const {
    if (rc != MPI_SUCCESS) throw RuntimeFault(prefix() + what + " (" + group_label() + "): MPI error: " + mpi_error_string(rc));
  }

  std::vector<int> others() const {
    std::vector<int> v;
    for (int r = 0; r < size(); ++r)
      if (r != rank()) v.push_back(r);
    return v;
  }

  // Completes `reqs` or throws when the deadline passes. `waiting_for` names the likely culprits.
  void wait_requests(MPI_Request* reqs, int n, MPI_Status* statuses, const std::string& what,
                     const std::vector<int>& waiting_for, Clock::time_point deadline) const {
    Backoff backoff;
    for (;;) {
      int flag = 0;
      check(MPI_Testall(n, reqs, &flag, statuses ? statuses : MPI_STATUSES_IGNORE), what);
      if (flag) return;
      if (Clock::now() >= deadline) throw_timeout(what, waiting_for);
      backoff.pause();
    }
  }

  std::string collective_label(const char* op, size_t count, DType t) const {
    return fmt::format("{} of {} {} ({}, {})", op, count, dtype_name(t), group_label(), members_label());
  }

  void wait_collective(MPI_Request* req, const std::string& what, Clock::time_point deadline) const {
    try {
      wait_requests(req, 1, nullptr, what, others(), deadline);
    } catch (const RuntimeFault& e) {
      // Blocked in a collective: any member may be the one missing.
      throw RuntimeFault(std::string(e.what()) + ", or did not call it");
    }
  }

 protected:
  void do_all_reduce(const void* in, void* out, size_t count, DType t, ReduceOp op) override {
    const auto what = collective_label("all_reduce", count, t);
    const auto deadline = Clock::now() + timeout();
    const size_t chunk = size_t{1} << 30;
    const size_t es = dtype_size(t);
    for (size_t off = 0; off < count; off += chunk) {
      const int n = static_cast<int>(std::min(chunk, count - off));
      MPI_Request req;
      void* o = static_cast<char*>(out) + off * es;
      const void* i = in == out ? MPI_IN_PLACE : static_cast<const char*>(in) + off * es;
      check(MPI_Iallreduce(i, o, n, mpi_type(t), mpi_op(op), comm_, &req), what);
      wait_collective(&req, what, deadline);
    }
  }

  void do_reduce_scatter(const void* in, void* out, size_t block, DType t, ReduceOp op) override {
    const auto what = collective_label("reduce_scatter", block * size(), t);
    const int n = to_int_count(block, "reduce_scatter block");
    const size_t bytes = block * dtype_size(t);
    const bool in_place = out == static_cast<const char*>(in) + rank() * bytes;
    std::vector<char> tmp(in_place ? bytes : 0);
    void* dst = in_place ? tmp.data() : out;
    MPI_Request req;
    check(MPI_Ireduce_scatter_block(in, dst, n, mpi_type(t), mpi_op(op), comm_, &req), what);
    wait_collective(&req, what, Clock::now() + timeout());
    if (in_place) std::memcpy(out, tmp.data(), bytes);
  }

  void do_all_gather(const void* in, void* out, size_t block, DType t) override {
    const auto what = collective_label("all_gather", block * size(), t);
    const int n = to_int_count(block, "all_gather block");
    const bool in_place = in == static_cast<const char*>(out) + rank() * block * dtype_size(t);
    MPI_Request req;
    check(MPI_Iallgather(in_place ? MPI_IN_PLACE : in, n, mpi_type(t), out, n, mpi_type(t), comm_, &req), what);
    wait_collective(&req, what, Clock::now() + timeout());
  }

  void do_broadcast(void* buf, size_t count, DType t, int root) override {
    const auto what = fmt::format("broadcast of {} {} from rank {} ({}, {})", count, dtype_name(t),
                                  global_rank(root), group_label(), members_label());
    const auto deadline = Clock::now() + timeout();
    const size_t chunk = size_t{1} << 30;
    for (size_t off = 0; off < count; off += chunk) {
      const int n = static_cast<int>(std::min(chunk, count - off));
      MPI_Request req;
      check(MPI_Ibcast(static_cast<char*>(buf) + off * dtype_size(t), n, mpi_type(t), root, comm_, &req), what);
      try {
        wait_requests(&req, 1, nullptr, what, rank() == root ? others() : std::vector<int>{root}, deadline);
      } catch (const RuntimeFault& e) {
        throw RuntimeFault(std::string(e.what()) + ", or did not call broadcast");
      }
    }
  }

  void do_barrier() override {
    const auto what = fmt::format("barrier ({}, {})", group_label(), members_label());
    MPI_Request req;
    check(MPI_Ibarrier(comm_, &req), what);
    wait_collective(&req, what, Clock::now() + timeout());
  }

  Request do_isend(const void* buf, size_t bytes, int peer, int tag, const char* op) override;
  Request do_irecv(void* buf, size_t bytes, int peer, int tag, const char* op) override;
  std::shared_ptr<Communicator> do_new_group(const std::vector<int>& world_ranks, const std::string& name) override;

 private:
  friend class MpiRequest;
  Request post_p2p(void* buf, size_t bytes, int peer, int tag, const char* op, bool is_recv);
  void group_handshake(const std::vector<int>& members, long long digest, const std::string& what) const;

  MPI_Comm comm_;  // user traffic
  MPI_Comm ctrl_;  // our own handshakes
};

class MpiRequest final : public Request::Impl {
 public:
  MpiRequest(std::shared_ptr<const MpiCommunicator> comm, std::string what, int peer, size_t bytes, bool is_recv)
      : comm_(std::move(comm)), what_(std::move(what)), peer_(peer), bytes_(bytes), is_recv_(is_recv) {}
  ~MpiRequest() override {
    if (req_ != MPI_REQUEST_NULL && mpi_active()) MPI_Request_free(&req_);
  }

  MPI_Request* handle() { return &req_; }

  bool test() override {
    int flag = 0;
    MPI_Status st;
    comm_->check(MPI_Test(&req_, &flag, &st), what_);
    if (flag) check_length(st);
    return flag != 0;
  }

  void wait() override {
    MPI_Status st;
    comm_->wait_requests(&req_, 1, &st, what_, {peer_}, Clock::now() + comm_->timeout());
    check_length(st);
  }

 private:
  void check_length(const MPI_Status& st) const {
    if (!is_recv_) return;
    int got = 0;
    MPI_Get_count(&st, MPI_BYTE, &got);
    if (static_cast<size_t>(got) != bytes_)
      throw RuntimeFault(fmt::format("{}{}: expected {} bytes, the message had {} — sender and receiver disagree "
                                     "on the message size",
                                     comm_->prefix(), what_, bytes_, got));
  }

  std::shared_ptr<const MpiCommunicator> comm_;
  MPI_Request req_ = MPI_REQUEST_NULL;
  std::string what_;
  int peer_;
  size_t bytes_;
  bool is_recv_;
};

Request MpiCommunicator::post_p2p(void* buf, size_t bytes, int peer, int tag, const char* op, bool is_recv) {
  const auto what = p2p_label(op, peer);
  const int n = to_int_count(bytes, "a message of bytes");
  auto r = std::make_unique<MpiRequest>(std::static_pointer_cast<const MpiCommunicator>(shared_from_this()), what,
                                        peer, bytes, is_recv);
  check(is_recv ? MPI_Irecv(buf, n, MPI_BYTE, peer, tag, comm_, r->handle())
                : MPI_Isend(buf, n, MPI_BYTE, peer, tag, comm_, r->handle()),
        what);
  return Request(std::move(r));
}

Request MpiCommunicator::do_isend(const void* buf, size_t bytes, int peer, int tag, const char* op) {
  return post_p2p(const_cast<void*>(buf), bytes, peer, tag, op, false);
}

Request MpiCommunicator::do_irecv(void* buf, size_t bytes, int peer, int tag, const char* op) {
  return post_p2p(buf, bytes, peer, tag, op, true);
}

// MPI_Comm_create_group has no timeout, so the members first meet with non-blocking messages on
// ctrl_: the first listed rank collects an arrival (carrying a digest of name and list) from every
// other member, then releases them. Only when all are present does the blocking call run.
void MpiCommunicator::group_handshake(const std::vector<int>& members, long long digest, const std::string& what) const {
  const auto deadline = Clock::now() + timeout();
  const int leader = members[0];
  if (rank() != leader) {
    long long status = 0;
    MPI_Request reqs[2];
    check(MPI_Isend(&digest, 1, MPI_LONG_LONG, leader, kGroupArriveTag, ctrl_, &reqs[0]), what);
    check(MPI_Irecv(&status, 1, MPI_LONG_LONG, leader, kGroupReleaseTag, ctrl_, &reqs[1]), what);
    wait_requests(reqs, 2, nullptr, what, {leader}, deadline);
    if (status != 1)
      throw RuntimeFault(fmt::format("{}{}: the members called it with different rank lists or names", prefix(), what));
    return;
  }
  const size_t k = members.size() - 1;
  std::vector<long long> digests(k);
  std::vector<MPI_Request> reqs(k);
  for (size_t i = 0; i < k; ++i)
    check(MPI_Irecv(&digests[i], 1, MPI_LONG_LONG, members[i + 1], kGroupArriveTag, ctrl_, &reqs[i]), what);
  Backoff backoff;
  for (;;) {
    int flag = 0;
    check(MPI_Testall(static_cast<int>(k), reqs.data(), &flag, MPI_STATUSES_IGNORE), what);
    if (flag) break;
    if (Clock::now() >= deadline) {
      std::vector<int> missing;
      for (size_t i = 0; i < k; ++i) {
        int done = 0;
        MPI_Test(&reqs[i], &done, MPI_STATUS_IGNORE);
        if (!done) missing.push_back(members[i + 1]);
      }
      throw_timeout(what, missing);
    }
    backoff.pause();
  }
  long long status = 1;
  std::vector<int> disagree;
  for (size_t i = 0; i < k; ++i)
    if (digests[i] != digest) disagree.push_back(global_rank(members[i + 1]));
  if (!disagree.empty()) status = 0;
  for (size_t i = 0; i < k; ++i)
    check(MPI_Isend(&status, 1, MPI_LONG_LONG, members[i + 1], kGroupReleaseTag, ctrl_, &reqs[i]), what);
  wait_requests(reqs.data(), static_cast<int>(k), nullptr, what, {}, deadline);
  if (!disagree.empty()) {
    std::vector<std::string> names;
    for (int r : disagree) names.push_back(std::to_string(r));
    throw RuntimeFault(fmt::format("{}{}: ranks {} called it with a different rank list or name", prefix(), what,
                                   fmt::join(names, ",")));
  }
}

std::shared_ptr<Communicator> MpiCommunicator::do_new_group(const std::vector<int>& world_ranks,
                                                            const std::string& name) {
  std::vector<int> members;
  for (int w : world_ranks) members.push_back(group_rank_of(w));
  const std::string list = fmt::format("{}", fmt::join(world_ranks, ","));
  const auto what = fmt::format("new_group '{}' of ranks {} ({})", name, list, group_label());
  const auto digest = std::hash<std::string>{}(name + "|" + list);
  group_handshake(members, static_cast<long long>(digest), what);

  MPI_Group parent_group, group;
  check(MPI_Comm_group(ctrl_, &parent_group), what);
  check(MPI_Group_incl(parent_group, static_cast<int>(members.size()), members.data(), &group), what);
  MPI_Comm comm, ctrl;
  check(MPI_Comm_create_group(ctrl_, group, kCreateGroupTag, &comm), what);
  check(MPI_Comm_dup(comm, &ctrl), what);
  MPI_Group_free(&group);
  MPI_Group_free(&parent_group);
  int my = 0;
  MPI_Comm_rank(comm, &my);
  return std::make_shared<MpiCommunicator>(comm, ctrl, my, world_ranks, name, timeout());
}

}  // namespace

const MpiInfo& mpi_init() {
  static bool done = false;
  if (done) return g_info;
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS) throw RuntimeFault("MPI_Init_thread failed: " + mpi_error_string(rc));
    g_initialized_here = true;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
  MPI_Query_thread(&g_info.provided_thread_level);
  g_info.thread_level = thread_level_name(g_info.provided_thread_level);
  char lib[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(lib, &len);
  g_info.library = std::string(lib, static_cast<size_t>(len));
  if (auto nl = g_info.library.find_first_of("\n,"); nl != std::string::npos) g_info.library.resize(nl);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_info.world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_info.world_size);
  MPI_Comm local;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
    MPI_Comm_rank(local, &g_info.local_rank);
    MPI_Comm_size(local, &g_info.local_size);
    MPI_Comm_free(&local);
  }
  done = true;
  return g_info;
}

bool mpi_active() {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  return inited && !finalized;
}

void mpi_finalize() {
  if (g_initialized_here && mpi_active()) MPI_Finalize();
}

void mpi_abort(int code) {
  if (mpi_active()) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

CommPtr make_mpi_world(Millis timeout) {
  const auto& info = mpi_init();
  MPI_Comm comm, ctrl;
  auto fail = [](int rc) {
    if (rc != MPI_SUCCESS) throw RuntimeFault("MPI_Comm_dup of MPI_COMM_WORLD failed: " + mpi_error_string(rc));
  };
  fail(MPI_Comm_dup(MPI_COMM_WORLD, &comm));
  fail(MPI_Comm_dup(MPI_COMM_WORLD, &ctrl));
  std::vector<int> ranks(static_cast<size_t>(info.world_size));
  for (int i = 0; i < info.world_size; ++i) ranks[static_cast<size_t>(i)] = i;
  return std::make_shared<MpiCommunicator>(comm, ctrl, info.world_rank, std::move(ranks), "world", timeout);
}

}  // namespace fm::comm
