#include "runtime/comm/communicator.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::comm {

// ---- Request -------------------------------------------------------------------------------------

Request::Request(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Request::Request(Request&&) noexcept = default;
Request& Request::operator=(Request&& other) noexcept {
  impl_ = std::move(other.impl_);
  return *this;
}
Request::~Request() = default;

bool Request::test() {
  if (!impl_) return true;
  if (!impl_->test()) return false;
  impl_.reset();
  return true;
}

void Request::wait() {
  if (!impl_) return;
  impl_->wait();
  impl_.reset();
}

void wait_all(std::span<Request> requests) {
  for (auto& r : requests) r.wait();
}

// ---- Communicator --------------------------------------------------------------------------------

Communicator::Communicator(int rank, std::vector<int> global_ranks, std::string name, Millis timeout)
    : rank_(rank), global_ranks_(std::move(global_ranks)), name_(std::move(name)), timeout_(timeout) {
  FM_CHECK(rank_ >= 0 && rank_ < static_cast<int>(global_ranks_.size()), "rank outside its group");
  FM_CHECK(timeout_.count() > 0, "communicator timeout must be positive");
}

int Communicator::global_rank(int group_rank) const {
  FM_CHECK(group_rank >= 0 && group_rank < size(), fmt::format("rank {} outside the {} ({} ranks)",
                                                               group_rank, group_label(), size()));
  return global_ranks_[group_rank];
}

int Communicator::group_rank_of(int global_rank) const {
  auto it = std::find(global_ranks_.begin(), global_ranks_.end(), global_rank);
  return it == global_ranks_.end() ? -1 : static_cast<int>(it - global_ranks_.begin());
}

void Communicator::set_timeout(Millis t) {
  FM_CHECK(t.count() > 0, "communicator timeout must be positive");
  timeout_ = t;
}

std::string Communicator::group_label() const {
  return name_ == "world" ? std::string("world") : name_ + " group";
}

std::string Communicator::members_label() const {
  std::vector<std::string> parts;
  const size_t n = global_ranks_.size();
  if (n <= 12) {
    for (int r : global_ranks_) parts.push_back(std::to_string(r));
    return "ranks " + join(parts, ",");
  }
  for (size_t i = 0; i < 4; ++i) parts.push_back(std::to_string(global_ranks_[i]));
  parts.push_back("...");
  parts.push_back(std::to_string(global_ranks_.back()));
  return fmt::format("{} ranks: {}", n, join(parts, ","));
}

std::string Communicator::prefix() const { return fmt::format("rank {}: ", world_rank()); }

std::string Communicator::p2p_label(const char* op, int peer) const {
  const bool to = std::strstr(op, "send") != nullptr;
  return fmt::format("{} {} rank {} ({})", op, to ? "to" : "from", global_rank(peer), group_label());
}

std::string format_seconds(Millis t) { return fmt::format("{:g} s", t.count() / 1000.0); }

std::string Communicator::timeout_message(const std::string& what, const std::vector<int>& waiting_for) const {
  std::vector<std::string> names;
  for (int g : waiting_for) names.push_back(std::to_string(global_rank(g)));
  std::string msg = prefix() + what + " timed out after " + format_seconds(timeout_);
  if (waiting_for.size() == 1) {
    msg += fmt::format(" — rank {} is probably dead or stuck", names[0]);
  } else if (!waiting_for.empty()) {
    msg += fmt::format(" waiting for ranks {} — one of them is probably dead or stuck", join(names, ","));
  }
  return msg;
}

void Communicator::throw_timeout(const std::string& what, const std::vector<int>& waiting_for) const {
  throw RuntimeFault(timeout_message(what, waiting_for));
}

namespace {
bool overlaps(const void* a, size_t an, const void* b, size_t bn) {
  auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return an && bn && pa < pb + bn && pb < pa + an;
}


void check_reducible(DType t, const char* op) {
  FM_CHECK(dtype_reducible(t), fmt::format("{} of {} is not supported (f32, f64, i32, i64 only)", op, dtype_name(t)));
}
}  // namespace

void Communicator::all_reduce(const void* in, void* out, size_t count, DType t, ReduceOp op) {
  check_reducible(t, "all_reduce");
  const size_t bytes = count * dtype_size(t);
  FM_CHECK(in == out || !overlaps(in, bytes, out, bytes), "all_reduce: in and out overlap without being equal");
  if (count == 0) return;
  if (size() == 1) return copy_local(out, in, bytes);
  do_all_reduce(in, out, count, t, op);
}

void Communicator::reduce_scatter(const void* in, void* out, size_t block, DType t, ReduceOp op) {
  check_reducible(t, "reduce_scatter");
  const size_t bytes = block * dtype_size(t);
  const auto* own = static_cast<const char*>(in) + rank_ * bytes;
  FM_CHECK(out == own || !overlaps(in, bytes * size(), out, bytes),
           "reduce_scatter: out overlaps in without being this rank's block");
  if (block == 0) return;
  if (size() == 1) return copy_local(out, in, bytes);
  do_reduce_scatter(in, out, block, t, op);
}

void Communicator::all_gather(const void* in, void* out, size_t block, DType t) {
  const size_t bytes = block * dtype_size(t);
  const auto* own = static_cast<const char*>(out) + rank_ * bytes;
  FM_CHECK(in == own || !overlaps(in, bytes, out, bytes * size()),
           "all_gather: in overlaps out without being this rank's block");
  if (block == 0) return;
  if (size() == 1) return copy_local(out, in, bytes);
  do_all_gather(in, out, block, t);
}

void Communicator::broadcast(void* buf, size_t count, DType t, int root) {
  FM_CHECK(root >= 0 && root < size(), fmt::format("broadcast root {} outside the {}", root, group_label()));
  if (count == 0 || size() == 1) return;
  do_broadcast(buf, count, t, root);
}

void Communicator::barrier() {
  if (size() == 1) return;
  do_barrier();
}

namespace {
void check_p2p(const Communicator& c, int peer, int tag, const char* op) {
  FM_CHECK(peer >= 0 && peer < c.size() && peer != c.rank(),
           fmt::format("{}: peer {} is not another rank of the {} (rank {} of {})", op, peer, c.group_label(),
                       c.rank(), c.size()));
  FM_CHECK(tag >= 0 && tag <= Communicator::kMaxTag, fmt::format("{}: tag {} outside [0, {}]", op, tag,
                                                                  Communicator::kMaxTag));
}
}  // namespace

void Communicator::send(const void* buf, size_t count, DType t, int peer, int tag) {
  check_p2p(*this, peer, tag, "send");
  if (count == 0) return;
  do_isend(buf, count * dtype_size(t), peer, tag, "send").wait();
}

void Communicator::recv(void* buf, size_t count, DType t, int peer, int tag) {
  check_p2p(*this, peer, tag, "recv");
  if (count == 0) return;
  do_irecv(buf, count * dtype_size(t), peer, tag, "recv").wait();
}

Request Communicator::isend(const void* buf, size_t count, DType t, int peer, int tag) {
  check_p2p(*this, peer, tag, "isend");
  if (count == 0) return {};
  return do_isend(buf, count * dtype_size(t), peer, tag, "isend");
}

Request Communicator::irecv(void* buf, size_t count, DType t, int peer, int tag) {
  check_p2p(*this, peer, tag, "irecv");
  if (count == 0) return {};
  return do_irecv(buf, count * dtype_size(t), peer, tag, "irecv");
}

void Communicator::copy_local(void* out, const void* in, size_t bytes) const {
  if (out == in || bytes == 0) return;
  if (local_copy_) local_copy_(out, in, bytes);
  else std::memcpy(out, in, bytes);
}

std::shared_ptr<Communicator> Communicator::new_group(const std::vector<int>& world_ranks, const std::string& name) {
  FM_CHECK(!world_ranks.empty(), "new_group: empty rank list");
  std::set<int> seen;
  for (int r : world_ranks) {
    FM_CHECK(group_rank_of(r) >= 0, fmt::format("new_group '{}': rank {} is not in the {}", name, r, group_label()));
    FM_CHECK(seen.insert(r).second, fmt::format("new_group '{}': rank {} listed twice", name, r));
  }
  if (!seen.count(world_rank())) return nullptr;
  if (world_ranks.size() == 1) {
    CommPtr single = make_single_group(world_ranks[0], name, timeout());
    single->set_local_copy(local_copy_);
    return single;
  }
  return do_new_group(world_ranks, name);
}

// ---- the world of one process --------------------------------------------------------------------

namespace {
// Collectives of a one-rank group never reach the backend (the public methods copy), and it has no
// peer to message.
class SingleCommunicator final : public Communicator {
 public:
  SingleCommunicator(int world_rank, std::string name, Millis timeout)
      : Communicator(0, std::vector<int>{world_rank}, std::move(name), timeout) {}
  const char* backend() const override { return "single"; }

 protected:
  void do_all_reduce(const void*, void*, size_t, DType, ReduceOp) override { unreachable(); }
  void do_reduce_scatter(const void*, void*, size_t, DType, ReduceOp) override { unreachable(); }
  void do_all_gather(const void*, void*, size_t, DType) override { unreachable(); }
  void do_broadcast(void*, size_t, DType, int) override { unreachable(); }
  void do_barrier() override { unreachable(); }
  Request do_isend(const void*, size_t, int, int, const char*) override { unreachable(); }
  Request do_irecv(void*, size_t, int, int, const char*) override { unreachable(); }
  std::shared_ptr<Communicator> do_new_group(const std::vector<int>&, const std::string&) override { unreachable(); }

 private:
  [[noreturn]] static void unreachable() {
    FM_CHECK(false, "a one-rank group has no peers");
    std::abort();
  }
};
}  // namespace

CommPtr make_single_group(int world_rank, const std::string& name, Millis timeout) {
  return std::make_shared<SingleCommunicator>(world_rank, name, timeout);
}

CommPtr make_single_communicator(Millis timeout) { return make_single_group(0, "world", timeout); }

}  // namespace fm::comm
