#include "runtime/comm/gloo_comm.h"

#include <fmt/format.h>
#include <gloo/common/error.h>
#include <gloo/common/logging.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "runtime/base/error.h"
#include "runtime/base/text.h"
#include "runtime/comm/store.h"

namespace fm::comm {
namespace {

using Clock = std::chrono::steady_clock;
using gloo::transport::UnboundBuffer;

// Gloo slots: collectives take a fresh slot each (sequence number), messages one per tag.
constexpr uint64_t kCollectiveSlot = uint64_t{1} << 56;
constexpr uint64_t kP2pSlot = uint64_t{2} << 56;

// Gloo prefixes messages with "[/path/file.cc:123] "; people need only the rest.
std::string gloo_text(const char* what) {
  std::string s = what;
  if (s.rfind('[', 0) == 0) {
    auto end = s.find("] ");
    if (end != std::string::npos) s.erase(0, end + 2);
  }
  return s;
}

class StoreAdapter final : public gloo::rendezvous::Store {
 public:
  StoreAdapter(StoreClient& store, std::string prefix) : store_(store), prefix_(std::move(prefix)) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    store_.set(prefix_ + key, std::string(data.begin(), data.end()));
  }
  std::vector<char> get(const std::string& key) override {
    auto v = store_.get(prefix_ + key);
    return {v.begin(), v.end()};
  }
  void wait(const std::vector<std::string>& keys) override { wait(keys, store_.timeout()); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds&) override {
    std::vector<std::string> full;
    for (const auto& k : keys) full.push_back(prefix_ + k);
    store_.wait(full, store_.timeout());  // ours, not Gloo's 30 s default
  }

 private:
  StoreClient& store_;
  std::string prefix_;
};

struct WorldState {
  std::shared_ptr<StoreClient> store;
  std::shared_ptr<gloo::transport::Device> device;
  std::mutex mu;
  std::map<std::string, int> groups_made;  // member list -> groups made over it so far
};

// The waits in progress of one communicator, so that a lost peer can interrupt them.
struct WaitRegistry {
  std::mutex mu;
  std::set<std::pair<UnboundBuffer*, bool>> active;  // (buffer, is_recv)
  bool interrupted = false;

  void interrupt() {
    std::lock_guard<std::mutex> lock(mu);
    interrupted = true;
    for (auto [b, is_recv] : active) is_recv ? b->abortWaitRecv() : b->abortWaitSend();
  }
};

struct Op {
  std::string what;
  Clock::time_point deadline;
  uint64_t slot;
};

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(std::shared_ptr<WorldState> world, std::shared_ptr<gloo::Context> ctx, int rank,
                   std::vector<int> global_ranks, std::string name, Millis timeout)
      : Communicator(rank, std::move(global_ranks), std::move(name), timeout),
        world_(std::move(world)),
        ctx_(std::move(ctx)),
        waits_(std::make_shared<WaitRegistry>()) {
    listener_ = world_->store->add_lost_listener([reg = waits_](const LostPeer&) { reg->interrupt(); });
  }
  ~GlooCommunicator() override { world_->store->remove_lost_listener(listener_); }

  const char* backend() const override { return "gloo"; }

  std::unique_ptr<UnboundBuffer> buffer(const void* p, size_t bytes) const {
    return ctx_->createUnboundBuffer(const_cast<void*>(p), bytes);
  }

  // Posts a send or recv (Gloo may throw at once when the pair is already broken).
  void post(UnboundBuffer& b, bool is_recv, int peer, uint64_t slot, size_t offset, size_t bytes, const Op& op) const {
    try {
      if (is_recv)
        b.recv(peer, slot, offset, bytes);
      else
        b.send(peer, slot, offset, bytes);
    } catch (const std::exception& e) {
      fail(e.what(), op, peer, false);
    }
  }

  // Completes a posted operation on `b`, or throws a RuntimeFault naming `peer` (a group rank).
  void wait_op(UnboundBuffer& b, bool is_recv, int peer, const Op& op, bool collective) const {
    {
      std::lock_guard<std::mutex> lock(waits_->mu);
      if (waits_->interrupted) fail_lost(op);
      waits_->active.insert({&b, is_recv});
    }
    bool ok = false;
    try {
      auto left = std::chrono::duration_cast<Millis>(op.deadline - Clock::now());
      if (left.count() <= 0) left = Millis(1);
      ok = is_recv ? b.waitRecv(nullptr, left) : b.waitSend(nullptr, left);
    } catch (const std::exception& e) {
      unregister(b, is_recv);
      fail(e.what(), op, peer, collective);
    }
    unregister(b, is_recv);
    if (!ok) fail_lost(op);
  }

  Op begin(std::string what) {
    return {std::move(what), Clock::now() + timeout(), kCollectiveSlot | (seq_++ & 0xffffffffffffull)};
  }
  Op begin_p2p(std::string what, int tag) const {
    return {std::move(what), Clock::now() + timeout(), kP2pSlot | static_cast<uint64_t>(tag)};
  }

  std::string collective_label(const char* op, size_t count, DType t) const {
    return fmt::format("{} of {} {} ({}, {})", op, count, dtype_name(t), group_label(), members_label());
  }

 protected:
  void do_all_reduce(const void* in, void* out, size_t count, DType t, ReduceOp op) override {
    Op o = begin(collective_label("all_reduce", count, t));
    const size_t es = dtype_size(t);
    if (in != out) std::memcpy(out, in, count * es);
    // Near-equal blocks; the first count % size ranks own one element more.
    std::vector<size_t> off(size() + 1, 0);
    for (int i = 0; i < size(); ++i)
      off[i + 1] = off[i] + count / size() + (static_cast<size_t>(i) < count % size() ? 1 : 0);
    char* base = static_cast<char*>(out);
    ring_reduce_scatter(base, base + off[rank()] * es, off, t, op, o);
    ring_all_gather(base, off, es, o);
  }

  void do_reduce_scatter(const void* in, void* out, size_t block, DType t, ReduceOp op) override {
    Op o = begin(collective_label("reduce_scatter", block * size(), t));
    std::vector<size_t> off(size() + 1);
    for (int i = 0; i <= size(); ++i) off[i] = block * i;
    ring_reduce_scatter(static_cast<const char*>(in), out, off, t, op, o);
  }

  void do_all_gather(const void* in, void* out, size_t block, DType t) override {
    Op o = begin(collective_label("all_gather", block * size(), t));
    const size_t bytes = block * dtype_size(t);
    char* own = static_cast<char*>(out) + rank() * bytes;
    if (in != own) std::memcpy(own, in, bytes);
    std::vector<size_t> off(size() + 1);
    for (int i = 0; i <= size(); ++i) off[i] = block * i;
    ring_all_gather(static_cast<char*>(out), off, dtype_size(t), o);
  }

  // Binomial tree rooted at `root`: log2(size) rounds, the root's link is not the bottleneck.
  void do_broadcast(void* buf, size_t count, DType t, int root) override {
    Op o = begin(fmt::format("broadcast of {} {} from rank {} ({}, {})", count, dtype_name(t), global_rank(root),
                             group_label(), members_label()));
    const size_t bytes = count * dtype_size(t);
    const int p = size(), v = (rank() - root + p) % p;
    auto b = buffer(buf, bytes);
    int mask = 1;
    for (; mask < p; mask <<= 1) {
      if (v & mask) {
        const int src = (v - mask + root) % p;
        post(*b, true, src, o.slot, 0, bytes, o);
        wait_op(*b, true, src, o, true);
        break;
      }
    }
    std::vector<std::unique_ptr<UnboundBuffer>> sends;
    std::vector<int> dsts;
    for (mask >>= 1; mask > 0; mask >>= 1) {
      if (v + mask < p) {
        const int dst = (v + mask + root) % p;
        sends.push_back(buffer(buf, bytes));
        dsts.push_back(dst);
        post(*sends.back(), false, dst, o.slot, 0, bytes, o);
      }
    }
    for (size_t i = 0; i < sends.size(); ++i) wait_op(*sends[i], false, dsts[i], o, true);
  }

  // Dissemination barrier: in round k every rank signals rank+2^k and hears from rank-2^k.
  void do_barrier() override {
    Op o = begin(fmt::format("barrier ({}, {})", group_label(), members_label()));
    const int p = size();
    char token_out = 1, token_in = 0;
    for (int k = 1; k < p; k <<= 1) {
      const int to = (rank() + k) % p, from = (rank() - k + p) % p;
      auto s = buffer(&token_out, 1), r = buffer(&token_in, 1);
      post(*r, true, from, o.slot, 0, 1, o);
      post(*s, false, to, o.slot, 0, 1, o);
      wait_op(*r, true, from, o, true);
      wait_op(*s, false, to, o, true);
    }
  }

  Request do_isend(const void* buf, size_t bytes, int peer, int tag, const char* op) override;
  Request do_irecv(void* buf, size_t bytes, int peer, int tag, const char* op) override;
  std::shared_ptr<Communicator> do_new_group(const std::vector<int>& world_ranks, const std::string& name) override;

 private:
  friend class GlooRequest;

  // Ring reduce-scatter over blocks [off[i], off[i+1]) (elements) of `in`: at step s a rank
  // passes its partial sum of block rank-s-1 to the next rank and adds its own contribution to
  // the block rank-s-2 arriving from the previous one; after size-1 steps it holds block rank().
  // `out` (block rank()) may alias that block of `in`.
  void ring_reduce_scatter(const char* in, void* out, const std::vector<size_t>& off, DType t, ReduceOp rop,
                           const Op& o) {
    const int p = size(), r = rank();
    const size_t es = dtype_size(t);
    size_t max_block = 0;
    for (int i = 0; i < p; ++i) max_block = std::max(max_block, off[i + 1] - off[i]);
    std::vector<char> tmp[2] = {std::vector<char>(max_block * es), std::vector<char>(max_block * es)};
    auto len = [&](int i) { return (off[i + 1] - off[i]) * es; };
    const int next = (r + 1) % p, prev = (r - 1 + p) % p;
    auto in_buf = buffer(in, off[p] * es);
    std::unique_ptr<UnboundBuffer> tmp_buf[2] = {buffer(tmp[0].data(), tmp[0].size()),
                                                 buffer(tmp[1].data(), tmp[1].size())};
    for (int s = 0; s + 1 < p; ++s) {
      const int send_block = ((r - s - 1) % p + p) % p, recv_block = ((r - s - 2) % p + p) % p;
      UnboundBuffer& rb = *tmp_buf[s % 2];
      UnboundBuffer& sb = s == 0 ? *in_buf : *tmp_buf[(s + 1) % 2];
      const size_t send_off = s == 0 ? off[send_block] * es : 0;
      if (len(recv_block)) post(rb, true, prev, o.slot, 0, len(recv_block), o);
      if (len(send_block)) post(sb, false, next, o.slot, send_off, len(send_block), o);
      if (len(recv_block)) wait_op(rb, true, prev, o, true);
      if (len(send_block)) wait_op(sb, false, next, o, true);
      const size_t n = off[recv_block + 1] - off[recv_block];
      const char* mine = in + off[recv_block] * es;
      if (s + 2 < p) {
        reduce_into(tmp[s % 2].data(), mine, n, t, rop);
      } else {  // last step: recv_block == r
        if (out != mine) std::memcpy(out, mine, n * es);
        reduce_into(out, tmp[s % 2].data(), n, t, rop);
      }
    }
  }

  // Ring all-gather in place over blocks [off[i], off[i+1]) (elements of `es` bytes) of `base`.
  void ring_all_gather(char* base, const std::vector<size_t>& off, size_t es, const Op& o) {
    const int p = size(), r = rank();
    const int next = (r + 1) % p, prev = (r - 1 + p) % p;
    auto send_buf = buffer(base, off[p] * es), recv_buf = buffer(base, off[p] * es);
    auto len = [&](int i) { return (off[i + 1] - off[i]) * es; };
    for (int s = 0; s + 1 < p; ++s) {
      const int send_block = ((r - s) % p + p) % p, recv_block = ((r - s - 1) % p + p) % p;
      if (len(recv_block)) post(*recv_buf, true, prev, o.slot, off[recv_block] * es, len(recv_block), o);
      if (len(send_block)) post(*send_buf, false, next, o.slot, off[send_block] * es, len(send_block), o);
      if (len(recv_block)) wait_op(*recv_buf, true, prev, o, true);
      if (len(send_block)) wait_op(*send_buf, false, next, o, true);
    }
  }

  void unregister(UnboundBuffer& b, bool is_recv) const {
    std::lock_guard<std::mutex> lock(waits_->mu);
    waits_->active.erase({&b, is_recv});
  }

  [[noreturn]] void fail_lost(const Op& op) const {
    if (auto l = world_->store->lost()) throw RuntimeFault(prefix() + op.what + " failed: " + l->reason);
    throw RuntimeFault(prefix() + op.what + ": the wait was abandoned");
  }

  [[noreturn]] void fail(const char* gloo_what, const Op& op, int peer, bool collective) const {
    const std::string text = gloo_text(gloo_what);
    if (auto l = world_->store->lost()) throw RuntimeFault(prefix() + op.what + " failed: " + l->reason);
    if (text.find("Timed out") != std::string::npos || Clock::now() >= op.deadline) {
      std::string msg = timeout_message(op.what, {peer});
      if (collective) msg += ", or did not call it";
      throw RuntimeFault(msg);
    }
    // A broken connection: the store usually learns within moments which rank died.
    for (int i = 0; i < 30; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (auto l = world_->store->lost()) throw RuntimeFault(prefix() + op.what + " failed: " + l->reason);
    }
    const int g = global_rank(peer);
    throw RuntimeFault(fmt::format("{}{} failed: the connection to rank {} broke ({}) — rank {} probably died", prefix(),
                                   op.what, g, text, g));
  }

  std::shared_ptr<WorldState> world_;
  std::shared_ptr<gloo::Context> ctx_;
  std::shared_ptr<WaitRegistry> waits_;
  int listener_ = -1;
  uint64_t seq_ = 0;
};

// An isend/irecv. wait() completes it on the caller's thread; the first test() hands the wait to a
// helper thread (Gloo buffers cannot be polled without failing the pair), later tests read its state.
class GlooRequest final : public Request::Impl {
 public:
  GlooRequest(std::shared_ptr<const GlooCommunicator> comm, std::unique_ptr<UnboundBuffer> buf, bool is_recv, int peer,
              Op op)
      : comm_(std::move(comm)), buf_(std::move(buf)), is_recv_(is_recv), peer_(peer), op_(std::move(op)) {}

  ~GlooRequest() override {
    if (waiter_.joinable()) {
      if (!finished_.load()) is_recv_ ? buf_->abortWaitRecv() : buf_->abortWaitSend();
      waiter_.join();
    }
    if (!complete_) (void)buf_.release();  // the transport may still write into or read from it
  }

  bool test() override {
    if (complete_) return true;
    if (!waiter_.joinable()) {
      op_.deadline = Clock::now() + comm_->timeout();
      waiter_ = std::thread([this] {
        try {
          comm_->wait_op(*buf_, is_recv_, peer_, op_, false);
        } catch (...) {
          error_ = std::current_exception();
        }
        finished_ = true;
      });
    }
    if (!finished_.load()) return false;
    finish();
    return true;
  }

  void wait() override {
    if (complete_) return;
    if (waiter_.joinable()) return finish();
    op_.deadline = Clock::now() + comm_->timeout();
    comm_->wait_op(*buf_, is_recv_, peer_, op_, false);
    complete_ = true;
  }

 private:
  void finish() {
    waiter_.join();
    if (error_) std::rethrow_exception(error_);
    complete_ = true;
  }

  std::shared_ptr<const GlooCommunicator> comm_;
  std::unique_ptr<UnboundBuffer> buf_;
  bool is_recv_;
  int peer_;
  Op op_;
  std::thread waiter_;
  std::atomic<bool> finished_{false};
  std::exception_ptr error_;
  bool complete_ = false;
};

Request GlooCommunicator::do_isend(const void* buf, size_t bytes, int peer, int tag, const char* op) {
  Op o = begin_p2p(p2p_label(op, peer), tag);
  auto b = buffer(buf, bytes);
  post(*b, false, peer, o.slot, 0, bytes, o);
  return Request(std::make_unique<GlooRequest>(std::static_pointer_cast<const GlooCommunicator>(shared_from_this()),
                                               std::move(b), false, peer, std::move(o)));
}

Request GlooCommunicator::do_irecv(void* buf, size_t bytes, int peer, int tag, const char* op) {
  Op o = begin_p2p(p2p_label(op, peer), tag);
  auto b = buffer(buf, bytes);
  post(*b, true, peer, o.slot, 0, bytes, o);
  return Request(std::make_unique<GlooRequest>(std::static_pointer_cast<const GlooCommunicator>(shared_from_this()),
                                               std::move(b), true, peer, std::move(o)));
}

// Members first meet in the store (so a missing rank is named), then Gloo connects the full mesh
// through the store under a prefix no other group or call uses.
std::shared_ptr<GlooCommunicator> connect_group(const std::shared_ptr<WorldState>& world,
                                                const std::vector<int>& world_ranks, const std::string& name,
                                                Millis timeout) {
  StoreClient& store = *world->store;
  const int me = store.rank();
  const int index = static_cast<int>(std::find(world_ranks.begin(), world_ranks.end(), me) - world_ranks.begin());
  std::vector<std::string> names;
  for (int r : world_ranks) names.push_back(std::to_string(r));
  const std::string members = join(names, ",");
  int nth;
  {
    std::lock_guard<std::mutex> lock(world->mu);
    nth = world->groups_made[members]++;
  }
  const std::string prefix = fmt::format("gloo/{}#{}/", members, nth);
  const std::string label = name == "world" ? std::string("world") : name + " group";
  store.set(prefix + "arrived/" + std::to_string(me), "1");
  std::vector<std::string> keys;
  for (int r : world_ranks) keys.push_back(prefix + "arrived/" + std::to_string(r));
  store.wait_for_ranks(keys, world_ranks, fmt::format("joining the {} (ranks {})", label, members));

  auto ctx = std::make_shared<gloo::rendezvous::Context>(index, static_cast<int>(world_ranks.size()));
  ctx->setTimeout(timeout);
  StoreAdapter adapter(store, prefix + "mesh/");
  try {
    ctx->connectFullMesh(adapter, world->device);
  } catch (const RuntimeFault&) {
    throw;
  } catch (const std::exception& e) {
    if (auto l = store.lost())
      throw RuntimeFault(fmt::format("rank {}: connecting the {} failed: {}", me, label, l->reason));
    throw RuntimeFault(fmt::format("rank {}: connecting the {} (ranks {}) with Gloo failed: {}", me, label, members,
                                   gloo_text(e.what())));
  }
  return std::make_shared<GlooCommunicator>(world, std::move(ctx), index, world_ranks, name, timeout);
}

std::shared_ptr<Communicator> GlooCommunicator::do_new_group(const std::vector<int>& world_ranks,
                                                             const std::string& name) {
  return connect_group(world_, world_ranks, name, timeout());
}

}  // namespace

CommPtr make_gloo_world(std::shared_ptr<StoreClient> store, Millis timeout) {
  std::signal(SIGPIPE, SIG_IGN);
  const int n = store->world_size();
  if (n == 1) return make_single_group(0, "world", timeout);
  gloo::transport::tcp::attr attr;
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname)
    attr.iface = ifname;
  else
    attr.hostname = store->local_address();
  auto world = std::make_shared<WorldState>();
  world->store = std::move(store);
  try {
    world->device = gloo::transport::tcp::CreateDevice(attr);
  } catch (const std::exception& e) {
    if (ifname && *ifname)
      throw InputError("GLOO_SOCKET_IFNAME", fmt::format("cannot use interface '{}': {}", ifname, gloo_text(e.what())),
                       "name a network interface of this host (see `ip addr`), or unset it");
    throw RuntimeFault(fmt::format("rank {}: creating the Gloo tcp device on {} failed: {}", world->store->rank(),
                                   attr.hostname, gloo_text(e.what())));
  }
  std::vector<int> ranks(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) ranks[static_cast<size_t>(i)] = i;
  return connect_group(world, ranks, "world", timeout);
}

}  // namespace fm::comm
