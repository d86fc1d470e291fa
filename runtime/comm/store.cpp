#include "runtime/comm/store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::comm {
namespace {

using Clock = std::chrono::steady_clock;

// ---- wire format -----------------------------------------------------------------------------------

enum class Op : uint8_t {
  Hello = 1, Ok, Error, Set, Get, Value, Wait, Add, Check, Missing, Ping, Pong, Bye, Abort, Lost,
};

constexpr const char* kMagic = "fmstore/1";
constexpr uint32_t kMaxFrame = 64u << 20;

struct Frame {
  Op op{};
  std::vector<std::string> f;
};

void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

std::string encode(const Frame& fr) {
  std::string body;
  body.push_back(static_cast<char>(fr.op));
  body.push_back(static_cast<char>(fr.f.size() & 0xff));
  body.push_back(static_cast<char>((fr.f.size() >> 8) & 0xff));
  for (const auto& x : fr.f) {
    put_u32(body, static_cast<uint32_t>(x.size()));
    body += x;
  }
  std::string out;
  put_u32(out, static_cast<uint32_t>(body.size()));
  return out + body;
}

// Takes one complete frame off the front of `buf`. Returns false when more bytes are needed;
// throws std::runtime_error on bytes that are not our protocol.
bool decode(std::string& buf, Frame& out) {
  if (buf.size() < 4) return false;
  const uint32_t len = get_u32(buf.data());
  if (len < 3 || len > kMaxFrame) throw std::runtime_error("not a rendezvous-store frame");
  if (buf.size() < 4 + size_t{len}) return false;
  const char* p = buf.data() + 4;
  const char* end = p + len;
  out.op = static_cast<Op>(static_cast<unsigned char>(p[0]));
  const size_t n = static_cast<unsigned char>(p[1]) | (static_cast<size_t>(static_cast<unsigned char>(p[2])) << 8);
  p += 3;
  out.f.clear();
  for (size_t i = 0; i < n; ++i) {
    if (end - p < 4) throw std::runtime_error("truncated rendezvous-store frame");
    const uint32_t l = get_u32(p);
    p += 4;
    if (static_cast<size_t>(end - p) < l) throw std::runtime_error("truncated rendezvous-store frame");
    out.f.emplace_back(p, l);
    p += l;
  }
  buf.erase(0, 4 + size_t{len});
  return true;
}

// ---- sockets ---------------------------------------------------------------------------------------

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }
void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Sends everything or fails (peer gone, or deadline). Never raises SIGPIPE.
bool send_all(int fd, const std::string& data, Clock::time_point deadline) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Clock::now() >= deadline) return false;
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 100);
      continue;
    }
    return false;
  }
  return true;
}

// Reads what is available into `buf`. Returns false on EOF or error.
bool read_some(int fd, std::string& buf) {
  char tmp[65536];
  for (;;) {
    ssize_t n = ::recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (n > 0) {
      buf.append(tmp, static_cast<size_t>(n));
      if (static_cast<size_t>(n) < sizeof tmp) return true;
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

std::string hostname() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

bool parse_int(const std::string& s, long long& v) { return parse_int64(s, v); }

// ---- server ----------------------------------------------------------------------------------------

enum class RankState { Unknown, Alive, Done, Lost };

}  // namespace

struct StoreServer::Impl {
  struct Conn {
    int fd = -1;
    std::string in, out;
    bool heartbeat = false;
    int rank = -1;
    Clock::time_point last_seen;
    std::optional<Frame> pending;  // a get/wait that waits for keys
    bool dead = false;
  };

  int listen_fd = -1;
  int wake[2] = {-1, -1};
  int port = 0;
  int world = 0;
  LivenessConfig cfg;
  std::thread thread;
  std::atomic<bool> stop{false};

  std::mutex mu;  // guards everything below; the serving thread holds it while it handles events
  std::condition_variable cv;
  std::map<int, Conn> conns;
  std::unordered_map<std::string, std::string> kv;
  std::vector<RankState> state;
  std::vector<std::string> hosts;

  void queue(Conn& c, const Frame& fr) {
    if (c.dead) return;
    c.out += encode(fr);
    flush(c);
  }

  void flush(Conn& c) {
    while (!c.out.empty()) {
      ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.out.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      c.dead = true;
      return;
    }
  }

  std::string rank_name(int r) const {
    return hosts[r].empty() ? fmt::format("rank {}", r) : fmt::format("rank {} (host {})", r, hosts[r]);
  }

  void announce_lost(int r, const std::string& reason) {
    if (state[r] == RankState::Lost) return;
    state[r] = RankState::Lost;
    for (auto& [fd, c] : conns)
      if (c.heartbeat) queue(c, {Op::Lost, {std::to_string(r), reason}});
    cv.notify_all();
  }

  void close_conn(Conn& c) {
    if (c.heartbeat && c.rank >= 0 && state[c.rank] == RankState::Alive)
      announce_lost(c.rank, rank_name(c.rank) + " lost: its process died or exited without finishing "
                                                 "(its connection to the rendezvous store closed)");
    c.dead = true;
  }

  // Answers a get/wait when its keys are there; false keeps it pending.
  bool try_answer(Conn& c, const Frame& fr) {
    if (fr.op == Op::Get) {
      auto it = kv.find(fr.f.at(0));
      if (it == kv.end()) return false;
      queue(c, {Op::Value, {it->second}});
      return true;
    }
    for (const auto& k : fr.f)
      if (!kv.count(k)) return false;
    queue(c, {Op::Ok, {}});
    return true;
  }

  void recheck_pending() {
    for (auto& [fd, c] : conns)
      if (c.pending && try_answer(c, *c.pending)) c.pending.reset();
  }

  void handle(Conn& c, Frame& fr) {
    c.last_seen = Clock::now();
    switch (fr.op) {
      case Op::Hello: {
        long long r = -1, w = -1;
        if (fr.f.size() != 5 || fr.f[0] != kMagic || !parse_int(fr.f[1], r) || !parse_int(fr.f[2], w)) {
          queue(c, {Op::Error, {"malformed hello"}});
          c.dead = true;
          return;
        }
        if (w != world || r < 0 || r >= world) {
          queue(c, {Op::Error, {fmt::format("this store serves a world of {} ranks, but rank {} of {} connected — is "
                                            "another job using the same MASTER_PORT?",
                                            world, r, w)}});
          return;
        }
        if (fr.f[3] == "heartbeat") {
          if (state[r] != RankState::Unknown) {
            queue(c, {Op::Error, {fmt::format("rank {} is already registered with this store — is another job using "
                                              "the same MASTER_PORT, or RANK set twice?",
                                              r)}});
            return;
          }
          c.heartbeat = true;
          c.rank = static_cast<int>(r);
          state[r] = RankState::Alive;
          hosts[r] = fr.f[4];
        }
        queue(c, {Op::Ok, {}});
        return;
      }
      case Op::Set:
        kv[fr.f.at(0)] = fr.f.at(1);
        queue(c, {Op::Ok, {}});
        recheck_pending();
        return;
      case Op::Get:
      case Op::Wait:
        if (!try_answer(c, fr)) c.pending = std::move(fr);
        return;
      case Op::Check: {
        std::vector<std::string> missing;
        for (const auto& k : fr.f)
          if (!kv.count(k)) missing.push_back(k);
        queue(c, {Op::Missing, missing});
        return;
      }
      case Op::Add: {
        long long delta = 0, cur = 0;
        parse_int(fr.f.at(1), delta);
        auto it = kv.find(fr.f.at(0));
        if (it != kv.end()) parse_int(it->second, cur);
        kv[fr.f.at(0)] = std::to_string(cur + delta);
        queue(c, {Op::Value, {std::to_string(cur + delta)}});
        recheck_pending();
        return;
      }
      case Op::Ping:
        queue(c, {Op::Pong, {}});
        return;
      case Op::Bye:
        if (c.heartbeat && state[c.rank] == RankState::Alive) state[c.rank] = RankState::Done;
        queue(c, {Op::Ok, {}});
        cv.notify_all();
        return;
      case Op::Abort:
        if (c.heartbeat && c.rank >= 0)
          announce_lost(c.rank, rank_name(c.rank) + " failed: " + (fr.f.empty() ? std::string("(no message)") : fr.f[0]));
        return;
      default:
        queue(c, {Op::Error, {"unknown request"}});
        c.dead = true;
    }
  }

  void serve() {
    std::vector<pollfd> fds;
    while (!stop.load()) {
      fds.clear();
      fds.push_back({wake[0], POLLIN, 0});
      fds.push_back({listen_fd, POLLIN, 0});
      {
        std::lock_guard<std::mutex> lock(mu);
        for (auto& [fd, c] : conns)
          fds.push_back({fd, static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT)), 0});
      }
      ::poll(fds.data(), fds.size(), 200);
      std::lock_guard<std::mutex> lock(mu);
      if (fds[0].revents) {
        char b[64];
        while (::read(wake[0], b, sizeof b) > 0) {
        }
      }
      if (fds[1].revents & POLLIN) {
        for (;;) {
          int fd = ::accept(listen_fd, nullptr, nullptr);
          if (fd < 0) break;
          set_nonblocking(fd);
          set_nodelay(fd);
          Conn c;
          c.fd = fd;
          c.last_seen = Clock::now();
          conns.emplace(fd, std::move(c));
        }
      }
      for (size_t i = 2; i < fds.size(); ++i) {
        auto it = conns.find(fds[i].fd);
        if (it == conns.end() || !fds[i].revents) continue;
        Conn& c = it->second;
        if (fds[i].revents & POLLOUT) flush(c);
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          const bool open = read_some(c.fd, c.in);
          try {
            Frame fr;
            while (!c.dead && decode(c.in, fr)) handle(c, fr);
          } catch (const std::exception&) {
            c.dead = true;  // not our protocol: drop the connection
          }
          if (!open) close_conn(c);
        }
      }
      const auto now = Clock::now();
      for (auto& [fd, c] : conns)
        if (c.heartbeat && !c.dead && state[c.rank] == RankState::Alive && now - c.last_seen > cfg.heartbeat_timeout) {
          announce_lost(c.rank, fmt::format("{} lost: no heartbeat for {} (process hung, stopped or unreachable)",
                                            rank_name(c.rank), format_seconds(cfg.heartbeat_timeout)));
          flush(c);
          c.dead = true;
        }
      for (auto it = conns.begin(); it != conns.end();) {
        if (it->second.dead) {
          close_conn(it->second);
          ::close(it->first);
          it = conns.erase(it);
        } else {
          ++it;
        }
      }
    }
  }
};

StoreServer::StoreServer(int port, int world_size, LivenessConfig cfg, std::string port_variable)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.world = world_size;
  s.cfg = std::move(cfg);
  s.state.assign(static_cast<size_t>(world_size), RankState::Unknown);
  s.hosts.assign(static_cast<size_t>(world_size), "");
  s.listen_fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool v6 = s.listen_fd >= 0;
  if (v6) {
    int zero = 0;
    setsockopt(s.listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // dual stack: v4 too
  } else {
    s.listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }
  if (s.listen_fd < 0) throw RuntimeFault(fmt::format("rendezvous store: socket(): {}", std::strerror(errno)));
  int one = 1;
  setsockopt(s.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // reruns while old sockets linger
  int rc;
  if (v6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    rc = ::bind(s.listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(static_cast<uint16_t>(port));
    rc = ::bind(s.listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (rc != 0 || ::listen(s.listen_fd, 1024) != 0) {
    const int err = errno;
    ::close(s.listen_fd);
    if (err == EADDRINUSE)
      throw InputError(port_variable, fmt::format("port {} is already in use on this host, so rank 0 cannot serve the "
                                                  "rendezvous store there",
                                                  port),
                       "choose a free port (another job, or a leftover process, holds this one)");
    throw InputError(port_variable, fmt::format("cannot listen on port {}: {}", port, std::strerror(err)),
                     "choose a port between 1024 and 65535 that is free on rank 0's host");
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(s.listen_fd, reinterpret_cast<sockaddr*>(&bound), &len);
  s.port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  set_nonblocking(s.listen_fd);
  if (::pipe2(s.wake, O_NONBLOCK | O_CLOEXEC) != 0) throw RuntimeFault("rendezvous store: pipe() failed");
  s.thread = std::thread([&s] { s.serve(); });
}

StoreServer::~StoreServer() {
  Impl& s = *impl_;
  s.stop = true;
  if (::write(s.wake[1], "x", 1) < 0) {
  }
  if (s.thread.joinable()) s.thread.join();
  for (auto& [fd, c] : s.conns) ::close(fd);
  ::close(s.listen_fd);
  ::close(s.wake[0]);
  ::close(s.wake[1]);
}

int StoreServer::port() const { return impl_->port; }

void StoreServer::announce_failure(int rank, const std::string& message) {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mu);
  s.announce_lost(rank, s.rank_name(rank) + " failed: " + message);
  const auto deadline = Clock::now() + std::chrono::seconds(1);
  for (auto& [fd, c] : s.conns)
    if (!c.dead && !c.out.empty() && send_all(fd, c.out, deadline)) c.out.clear();
}

void StoreServer::shutdown(Millis wait) {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lock(s.mu);
  s.cv.wait_for(lock, wait, [&] {
    for (auto st : s.state)
      if (st == RankState::Alive || st == RankState::Unknown) return false;
    return true;
  });
}

// ---- client ----------------------------------------------------------------------------------------

struct StoreClient::Impl {
  std::string host;
  int port = 0;
  int rank = 0;
  int world = 0;
  Millis timeout{};
  LivenessConfig cfg;
  std::string addr_variable;
  std::string local_addr;

  std::mutex req_mu;
  int req_fd = -1;
  std::string req_in;
  bool req_broken = false;

  std::mutex hb_write_mu;
  int hb_fd = -1;
  std::thread hb_thread;
  std::atomic<bool> closing{false};
  std::atomic<bool> stop{false};

  mutable std::mutex lost_mu;
  std::optional<LostPeer> lost;
  Clock::time_point lost_at;
  std::map<int, std::function<void(const LostPeer&)>> listeners;
  int next_listener = 0;

  std::string prefix() const { return fmt::format("rank {}: ", rank); }
  std::string endpoint() const { return fmt::format("{}:{}", host, port); }

  // Resolves once (an unknown host is the user's mistake), then retries connecting until the
  // deadline: rank 0 may start later than the others.
  int connect_with_retry(Clock::time_point deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    std::string last_error = "no address";
    for (;;) {
      addrinfo* res = nullptr;
      const int g = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
      if (g == EAI_NONAME || g == EAI_SERVICE)
        throw InputError(addr_variable, fmt::format("cannot resolve host '{}': {}", host, gai_strerror(g)),
                         "set it to the address or hostname of the machine that runs rank 0");
      if (g != 0) last_error = gai_strerror(g);
      for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
          ::freeaddrinfo(res);
          set_nodelay(fd);
          return fd;
        }
        last_error = std::strerror(errno);
        ::close(fd);
      }
      if (res) ::freeaddrinfo(res);
      if (Clock::now() >= deadline)
        throw RuntimeFault(fmt::format("{}could not reach the rendezvous store at {} ({}:MASTER_PORT) within {}: {} — "
                                       "is rank 0 running, and is {} its address?",
                                       prefix(), endpoint(), addr_variable, format_seconds(timeout), last_error,
                                       host));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // One request/reply over `fd` (the caller holds the matching mutex).
  Frame call(int fd, std::string& inbuf, const Frame& req, const std::string& what, Clock::time_point deadline,
             bool check_lost) {
    if (!send_all(fd, encode(req), deadline)) {
      req_broken = true;
      throw RuntimeFault(fmt::format("{}{}: lost the connection to the rendezvous store at {}{}", prefix(), what,
                                     endpoint(), lost_suffix()));
    }
    Frame fr;
    bool eof = false;
    for (;;) {
      try {
        if (decode(inbuf, fr)) break;
      } catch (const std::exception&) {
        req_broken = true;
        throw RuntimeFault(fmt::format("{}{}: {} does not speak the rendezvous-store protocol — is MASTER_PORT used "
                                       "by another program?",
                                       prefix(), what, endpoint()));
      }
      if (check_lost) {
        if (auto l = current_lost()) {
          req_broken = true;
          throw RuntimeFault(fmt::format("{}{} failed: {}", prefix(), what, l->reason));
        }
      }
      if (Clock::now() >= deadline) {
        req_broken = true;
        throw RuntimeFault(fmt::format("{}{} timed out after {}", prefix(), what, format_seconds(timeout)));
      }
      if (eof) {
        req_broken = true;
        throw RuntimeFault(fmt::format("{}{}: the rendezvous store at {} closed the connection{}", prefix(), what,
                                       endpoint(), lost_suffix()));
      }
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, 100);
      if (p.revents && !read_some(fd, inbuf)) eof = true;
    }
    if (fr.op == Op::Error)
      throw RuntimeFault(fmt::format("{}{}: the rendezvous store refused: {}", prefix(), what,
                                     fr.f.empty() ? std::string("?") : fr.f[0]));
    return fr;
  }

  Frame request(const Frame& req, const std::string& what, Millis t) {
    std::lock_guard<std::mutex> lock(req_mu);
    if (req_broken)
      throw RuntimeFault(fmt::format("{}{}: the rendezvous store connection is unusable after an earlier failure",
                                     prefix(), what));
    return call(req_fd, req_in, req, what, Clock::now() + t, true);
  }

  // A request on a fresh connection, for when the main one is stuck behind a timed-out wait.
  Frame one_shot(const Frame& req, const std::string& what, Millis t) {
    const auto deadline = Clock::now() + t;
    const int fd = connect_with_retry(deadline);
    std::string in;
    try {
      call(fd, in, {Op::Hello, {kMagic, std::to_string(rank), std::to_string(world), "query", hostname()}}, what,
           deadline, false);
      Frame fr = call(fd, in, req, what, deadline, false);
      ::close(fd);
      return fr;
    } catch (...) {
      ::close(fd);
      throw;
    }
  }

  std::optional<LostPeer> current_lost() const {
    std::lock_guard<std::mutex> lock(lost_mu);
    return lost;
  }

  std::string lost_suffix() const {
    auto l = current_lost();
    return l ? " (" + l->reason + ")" : std::string{};
  }

  void set_lost(LostPeer peer) {
    std::vector<std::function<void(const LostPeer&)>> fns;
    {
      std::lock_guard<std::mutex> lock(lost_mu);
      if (lost) return;
      lost = peer;
      lost_at = Clock::now();
      for (auto& [id, fn] : listeners) fns.push_back(fn);
    }
    for (auto& fn : fns) fn(peer);
  }

  bool hb_send(const Frame& fr) {
    std::lock_guard<std::mutex> lock(hb_write_mu);
    return hb_fd >= 0 && send_all(hb_fd, encode(fr), Clock::now() + std::chrono::seconds(2));
  }

  void heartbeat_loop() {
    std::string in;
    auto last_ping = Clock::now();
    auto last_heard = Clock::now();
    const std::string server = fmt::format("rank 0 (the rendezvous store at {})", endpoint());
    while (!stop.load()) {
      pollfd p{hb_fd, POLLIN, 0};
      ::poll(&p, 1, 200);
      const auto now = Clock::now();
      if (p.revents) {
        const bool open = read_some(hb_fd, in);
        Frame fr;
        try {
          while (decode(in, fr)) {
            last_heard = now;
            if (fr.op == Op::Lost && fr.f.size() == 2) {
              long long r = -1;
              parse_int(fr.f[0], r);
              set_lost({static_cast<int>(r), fr.f[1]});
            }
          }
        } catch (const std::exception&) {
          set_lost({0, server + " sent bytes that are not the store protocol"});
          break;
        }
        if (!open) {
          if (!closing.load()) set_lost({0, server + " lost: the connection to it closed (rank 0 died or exited)"});
          break;
        }
      }
      if (now - last_ping >= cfg.heartbeat_interval) {
        last_ping = now;
        if (!hb_send({Op::Ping, {}}) && !closing.load()) {
          set_lost({0, server + " lost: the connection to it broke"});
          break;
        }
      }
      if (now - last_heard > cfg.heartbeat_timeout && !closing.load())
        set_lost({0, fmt::format("{} lost: no heartbeat reply for {}", server, format_seconds(cfg.heartbeat_timeout))});
      watchdog();
    }
    // The loop ends when the connection is gone; a lost peer may still need the watchdog.
    while (!stop.load()) {
      watchdog();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  // A lost peer is known but the process goes on (busy in compute, or stuck outside our waits):
  // end it so no rank outlives the job by more than a few seconds.
  void watchdog() {
    if (closing.load() || !cfg.fatal || cfg.exit_grace.count() <= 0) return;
    std::optional<LostPeer> l;
    Clock::time_point at;
    {
      std::lock_guard<std::mutex> lock(lost_mu);
      l = lost;
      at = lost_at;
    }
    if (l && Clock::now() - at >= cfg.exit_grace)
      cfg.fatal(fmt::format("rank {}: ending this process: {}", rank, l->reason));
  }
};

StoreClient::StoreClient(const std::string& host, int port, int rank, int world_size, Millis timeout,
                         LivenessConfig cfg, std::string addr_variable)
    : impl_(std::make_unique<Impl>()) {
  Impl& c = *impl_;
  c.host = host;
  c.port = port;
  c.rank = rank;
  c.world = world_size;
  c.timeout = timeout;
  c.cfg = std::move(cfg);
  c.addr_variable = std::move(addr_variable);
  const auto deadline = Clock::now() + timeout;
  const std::string me = hostname();

  c.req_fd = c.connect_with_retry(deadline);
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  if (getsockname(c.req_fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (local.ss_family == AF_INET)
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&local)->sin_addr, buf, sizeof buf);
    else
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr, buf, sizeof buf);
    c.local_addr = buf;
  }
  const auto hello = [&](const char* role) {
    return Frame{Op::Hello, {kMagic, std::to_string(rank), std::to_string(world_size), role, me}};
  };
  {
    std::lock_guard<std::mutex> lock(c.req_mu);
    c.call(c.req_fd, c.req_in, hello("requests"), "joining the rendezvous store", deadline, false);
  }
  c.hb_fd = c.connect_with_retry(deadline);
  std::string hb_in;
  c.call(c.hb_fd, hb_in, hello("heartbeat"), "registering for liveness", deadline, false);
  set_nonblocking(c.hb_fd);
  c.hb_thread = std::thread([&c] { c.heartbeat_loop(); });
}

StoreClient::~StoreClient() {
  Impl& c = *impl_;
  c.stop = true;
  if (c.hb_fd >= 0) ::shutdown(c.hb_fd, SHUT_RDWR);
  if (c.hb_thread.joinable()) c.hb_thread.join();
  if (c.hb_fd >= 0) ::close(c.hb_fd);
  if (c.req_fd >= 0) ::close(c.req_fd);
}

void StoreClient::set(const std::string& key, const std::string& value) {
  impl_->request({Op::Set, {key, value}}, fmt::format("setting '{}' in the rendezvous store", key), impl_->timeout);
}

std::string StoreClient::get(const std::string& key) {
  auto fr = impl_->request({Op::Get, {key}}, fmt::format("waiting for '{}' in the rendezvous store", key),
                           impl_->timeout);
  FM_CHECK(fr.op == Op::Value && fr.f.size() == 1, "malformed store reply");
  return fr.f[0];
}

void StoreClient::wait(const std::vector<std::string>& keys) { wait(keys, impl_->timeout); }

void StoreClient::wait(const std::vector<std::string>& keys, Millis timeout) {
  if (keys.empty()) return;
  impl_->request({Op::Wait, keys},
                 fmt::format("waiting for {} key(s) ('{}'...) in the rendezvous store", keys.size(), keys[0]),
                 timeout);
}

long long StoreClient::add(const std::string& key, long long delta) {
  auto fr = impl_->request({Op::Add, {key, std::to_string(delta)}},
                           fmt::format("adding to '{}' in the rendezvous store", key), impl_->timeout);
  long long v = 0;
  FM_CHECK(fr.op == Op::Value && fr.f.size() == 1 && parse_int(fr.f[0], v), "malformed store reply");
  return v;
}

void StoreClient::wait_for_ranks(const std::vector<std::string>& keys, const std::vector<int>& ranks,
                                 const std::string& what) {
  FM_CHECK(keys.size() == ranks.size(), "one rank per key");
  try {
    wait(keys);
  } catch (const RuntimeFault& e) {
    if (lost()) throw;
    // Name the ranks that never arrived, on a fresh short request if the connection still works.
    std::vector<std::string> missing;
    try {
      auto fr = impl_->one_shot({Op::Check, keys}, "checking the rendezvous store", std::chrono::seconds(5));
      for (const auto& k : fr.f)
        for (size_t i = 0; i < keys.size(); ++i)
          if (keys[i] == k) missing.push_back(std::to_string(ranks[i]));
    } catch (const RuntimeFault&) {
    }
    if (missing.empty()) throw;
    throw RuntimeFault(fmt::format("{}{} timed out after {} waiting for rank{} {} — not started, or dead or stuck "
                                   "before reaching it",
                                   impl_->prefix(), what, format_seconds(impl_->timeout),
                                   missing.size() > 1 ? "s" : "", join(missing, ",")));
  }
}

int StoreClient::rank() const { return impl_->rank; }
int StoreClient::world_size() const { return impl_->world; }
Millis StoreClient::timeout() const { return impl_->timeout; }
std::string StoreClient::endpoint() const { return impl_->endpoint(); }
std::string StoreClient::local_address() const { return impl_->local_addr; }

std::optional<LostPeer> StoreClient::lost() const { return impl_->current_lost(); }

int StoreClient::add_lost_listener(std::function<void(const LostPeer&)> fn) {
  std::optional<LostPeer> now;
  int id;
  {
    std::lock_guard<std::mutex> lock(impl_->lost_mu);
    id = impl_->next_listener++;
    impl_->listeners[id] = fn;
    now = impl_->lost;
  }
  if (now) fn(*now);
  return id;
}

void StoreClient::remove_lost_listener(int id) {
  std::lock_guard<std::mutex> lock(impl_->lost_mu);
  impl_->listeners.erase(id);
}

void StoreClient::announce_failure(const std::string& message) { impl_->hb_send({Op::Abort, {message}}); }

void StoreClient::close() {
  Impl& c = *impl_;
  if (c.closing.exchange(true)) return;
  c.hb_send({Op::Bye, {}});
}

}  // namespace fm::comm
