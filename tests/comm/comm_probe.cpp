// A multi-process test program for the communicators: started by mpirun or by env_launch.sh, every
// rank runs one scenario and checks its results against values computed from the rank numbers.
//   comm_probe all [--pipe-sizes 1,2,4]   collectives, point-to-point, sub-groups and topologies
//   comm_probe info                        bootstrap only: prints the world and its layout
//   comm_probe timeout-recv                rank 0 waits for a message rank 1 never sends
//   comm_probe timeout-collective          every rank but 1 enters an all_reduce
//   comm_probe liveness --victim V [--stop] rank V kills (SIGKILL) or stops (SIGSTOP) itself during
//                                          all_reduces
//   comm_probe topology P D [P D ...]      no communication: prints our layouts as JSON
//   comm_probe free-port | hold-port P     helpers for the launch scripts
// Options: --backend auto|mpi|gloo, --timeout SECONDS, --heartbeat-timeout SECONDS, --tag TEXT
// (ignored: marks the processes so a test can look for leftovers).
// A failed check prints "CHECK FAILED" and ends the job with code 3; faults end it through abort_job.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "runtime/base/error.h"
#include "runtime/base/text.h"
#include "runtime/comm/bootstrap.h"
#include "runtime/comm/topology.h"

using namespace fm;
using namespace fm::comm;

namespace {

int g_rank = 0;

void expect(bool ok, const std::string& what) {
  if (ok) return;
  abort_job(3, fmt::format("CHECK FAILED on rank {}: {}", g_rank, what));
}

template <typename T>
void expect_eq(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  expect(got.size() == want.size(), what + ": size");
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i]) expect(false, fmt::format("{}: element {} is {}, expected {}", what, i, got[i], want[i]));
}

// ---- collectives -------------------------------------------------------------------------------------

void check_all_reduce(Communicator& c) {
  const int n = c.size(), r = c.rank();
  for (size_t count : {size_t{1}, size_t{7}, size_t{1000}, size_t{(1 << 20) + 3}}) {
    std::vector<float> x(count), want(count);
    for (size_t i = 0; i < count; ++i) {
      x[i] = static_cast<float>(r + 1) * static_cast<float>(i % 1000) + 0.5f * r;
      want[i] = static_cast<float>(n * (n + 1) / 2) * static_cast<float>(i % 1000) + 0.25f * n * (n - 1);
    }
    c.all_reduce(std::span<float>(x), ReduceOp::Sum);
    expect_eq(x, want, fmt::format("all_reduce sum f32 of {}", count));
  }
  {
    std::vector<double> x(13), mx(13), mn(13), want_max(13), want_min(13);
    for (int i = 0; i < 13; ++i) {
      x[i] = (r % 2 ? -1.0 : 1.0) * (r + i);
      double hi = -1e300, lo = 1e300;
      for (int q = 0; q < n; ++q) {
        const double v = (q % 2 ? -1.0 : 1.0) * (q + i);
        hi = std::max(hi, v), lo = std::min(lo, v);
      }
      want_max[i] = hi, want_min[i] = lo;
    }
    c.all_reduce(x.data(), mx.data(), 13, DType::F64, ReduceOp::Max);  // out of place
    c.all_reduce(x.data(), mn.data(), 13, DType::F64, ReduceOp::Min);
    expect_eq(mx, want_max, "all_reduce max f64");
    expect_eq(mn, want_min, "all_reduce min f64");
  }
  {
    std::vector<int64_t> x(5), want(5);
    for (int i = 0; i < 5; ++i) {
      x[i] = (int64_t{1} << 40) * r + i;
      want[i] = (int64_t{1} << 40) * (int64_t{n} * (n - 1) / 2) + int64_t{i} * n;
    }
    c.all_reduce(std::span<int64_t>(x));
    expect_eq(x, want, "all_reduce sum i64");
    expect(c.all_reduce_value<int32_t>(r, ReduceOp::Max) == n - 1, "all_reduce max i32");
    expect(c.all_reduce_value<int64_t>(r + 10, ReduceOp::Min) == 10, "all_reduce min i64");
  }
  float nothing = 42.f;
  c.all_reduce(&nothing, 0, DType::F32, ReduceOp::Sum);  // zero-size: a no-op everywhere
  expect(nothing == 42.f, "zero-size all_reduce leaves the buffer alone");
}

void check_reduce_scatter(Communicator& c) {
  const int n = c.size(), r = c.rank();
  for (size_t block : {size_t{1}, size_t{5}, size_t{1001}}) {
    std::vector<float> in(block * n), out(block), want(block);
    for (int j = 0; j < n; ++j)
      for (size_t k = 0; k < block; ++k) in[j * block + k] = static_cast<float>(r * 100 + j * 7 + static_cast<int>(k % 50));
    for (size_t k = 0; k < block; ++k) want[k] = static_cast<float>(100 * n * (n - 1) / 2 + n * (r * 7 + static_cast<int>(k % 50)));
    c.reduce_scatter(in.data(), out.data(), block, DType::F32, ReduceOp::Sum);
    expect_eq(out, want, fmt::format("reduce_scatter sum f32 block {}", block));
    // In place: the result lands in the rank's own block of the input.
    c.reduce_scatter(in.data(), in.data() + r * block, block, DType::F32, ReduceOp::Sum);
    expect_eq(std::vector<float>(in.begin() + r * block, in.begin() + (r + 1) * block), want,
              fmt::format("in-place reduce_scatter block {}", block));
  }
  std::vector<int64_t> in(3 * n), out(3);
  for (int j = 0; j < 3 * n; ++j) in[j] = (r == n - 1) ? 1000 + j : j;
  c.reduce_scatter(in.data(), out.data(), 3, DType::I64, ReduceOp::Max);
  for (int k = 0; k < 3; ++k) expect(out[k] == 1000 + r * 3 + k, "reduce_scatter max i64");
  c.reduce_scatter(in.data(), out.data(), 0, DType::I64, ReduceOp::Sum);
}

void check_all_gather(Communicator& c) {
  const int n = c.size(), r = c.rank();
  for (size_t block : {size_t{1}, size_t{3}, size_t{100001}}) {
    std::vector<int32_t> in(block), out(block * n), want(block * n);
    for (size_t k = 0; k < block; ++k) in[k] = r * 1000000 + static_cast<int32_t>(k);
    for (int j = 0; j < n; ++j)
      for (size_t k = 0; k < block; ++k) want[j * block + k] = j * 1000000 + static_cast<int32_t>(k);
    c.all_gather(in.data(), out.data(), block, DType::I32);
    expect_eq(out, want, fmt::format("all_gather i32 block {}", block));
    std::vector<int32_t> inplace(block * n, -1);
    std::copy(in.begin(), in.end(), inplace.begin() + r * block);
    c.all_gather(inplace.data() + r * block, inplace.data(), block, DType::I32);
    expect_eq(inplace, want, fmt::format("in-place all_gather block {}", block));
  }
  std::vector<uint16_t> bf(4 * n);  // bf16 payloads only move
  std::vector<uint16_t> mine = {static_cast<uint16_t>(r), 0x3f80, 0xffff, static_cast<uint16_t>(r * 3)};
  c.all_gather(mine.data(), bf.data(), 4, DType::BF16);
  for (int j = 0; j < n; ++j) expect(bf[j * 4] == j && bf[j * 4 + 1] == 0x3f80 && bf[j * 4 + 3] == j * 3, "all_gather bf16");
}

void check_broadcast(Communicator& c) {
  const int n = c.size(), r = c.rank();
  for (int root = 0; root < n; ++root) {
    for (size_t count : {size_t{1}, size_t{999}, size_t{300000}}) {
      std::vector<double> x(count), want(count);
      for (size_t i = 0; i < count; ++i) {
        want[i] = root * 0.25 + static_cast<double>(i);
        x[i] = r == root ? want[i] : -7.0;
      }
      c.broadcast(x.data(), count, DType::F64, root);
      expect_eq(x, want, fmt::format("broadcast of {} f64 from {}", count, root));
    }
  }
  double untouched = 3.0;
  c.broadcast(&untouched, 0, DType::F64, 0);
  for (int i = 0; i < 3; ++i) c.barrier();
}

// ---- point to point ----------------------------------------------------------------------------------

void check_p2p(Communicator& c) {
  const int n = c.size(), r = c.rank();
  if (n == 1) return;
  const int next = (r + 1) % n, prev = (r - 1 + n) % n;
  // Ordering within a tag, independence of tags: 5 messages on tag 7 and 3 on tag 9 go to the
  // next rank; the receiver posts tag 9 first.
  std::vector<int64_t> out7(5), out9(3), in7(5, -1), in9(3, -1);
  std::vector<Request> reqs;
  for (int k = 0; k < 5; ++k) {
    out7[k] = r * 100 + k;
    reqs.push_back(c.isend(&out7[k], 1, DType::I64, next, 7));
  }
  for (int k = 0; k < 3; ++k) {
    out9[k] = r * 100 + 50 + k;
    reqs.push_back(c.isend(&out9[k], 1, DType::I64, next, 9));
  }
  std::vector<Request> recvs;
  for (int k = 0; k < 3; ++k) recvs.push_back(c.irecv(&in9[k], 1, DType::I64, prev, 9));
  for (int k = 0; k < 5; ++k) recvs.push_back(c.irecv(&in7[k], 1, DType::I64, prev, 7));
  wait_all(recvs);
  wait_all(reqs);
  for (int k = 0; k < 5; ++k) expect(in7[k] == prev * 100 + k, "p2p order on tag 7");
  for (int k = 0; k < 3; ++k) expect(in9[k] == prev * 100 + 50 + k, "p2p order on tag 9");

  // Blocking pairs between even and odd ranks, odd sizes, and a zero-size message.
  for (size_t bytes : {size_t{1}, size_t{4097}, size_t{1000001}}) {
    std::vector<uint8_t> msg(bytes), got(bytes);
    for (size_t i = 0; i < bytes; ++i) msg[i] = static_cast<uint8_t>((i * 31 + r) & 0xff);
    const int partner = r ^ 1;
    if (partner >= n) continue;
    if (r % 2 == 0) {
      c.send(msg.data(), bytes, DType::U8, partner, 1);
      c.recv(got.data(), bytes, DType::U8, partner, 1);
    } else {
      c.recv(got.data(), bytes, DType::U8, partner, 1);
      c.send(msg.data(), bytes, DType::U8, partner, 1);
    }
    for (size_t i = 0; i < bytes; ++i)
      if (got[i] != static_cast<uint8_t>((i * 31 + partner) & 0xff)) expect(false, fmt::format("send/recv of {} bytes", bytes));
    c.send(msg.data(), 0, DType::U8, partner, 2);
    c.recv(got.data(), 0, DType::U8, partner, 2);
  }

  // test(): the receiver polls while the sender is late.
  float value = 0, mine = static_cast<float>(r) + 0.5f;
  Request rr = c.irecv(&value, 1, DType::F32, prev, 11);
  std::this_thread::sleep_for(std::chrono::milliseconds(r == 0 ? 200 : 0));
  Request sr = c.isend(&mine, 1, DType::F32, next, 11);
  int polls = 0;
  while (!rr.test()) {
    ++polls;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  expect(rr.done(), "a completed request is done");
  sr.wait();
  expect(value == static_cast<float>(prev) + 0.5f, "irecv completed by test()");
}

// ---- groups and topology -----------------------------------------------------------------------------

void check_groups(World& w, int pipe) {
  const CommPtr& world = w.comm();
  const int n = world->size(), me = world->world_rank();
  Topology topo(n, pipe);
  if (me == 0) std::printf("%s", topo.table(w.hosts()).c_str());
  RankGroups g = make_groups(world, topo);
  const auto dp = topo.data_parallel_ranks(me);
  expect(g.data_parallel && g.data_parallel->global_ranks() == dp, "data-parallel members");
  int64_t want = 0;
  for (int q : dp) want += q;
  expect(g.data_parallel->all_reduce_value<int64_t>(me) == want, "data-parallel all_reduce");
  expect(g.pipeline && g.pipeline->rank() == g.coord.stage && g.pipeline->size() == pipe, "pipeline group rank = stage");
  expect(g.pipeline->global_ranks() == topo.pipeline_ranks(me), "pipeline members");

  // An activation goes forward, its gradient backward, through every stage of the replica.
  std::vector<float> act(333, static_cast<float>(me));
  if (g.prev_stage >= 0) {
    std::vector<float> got(333);
    g.pipeline->recv(got.data(), got.size(), DType::F32, g.prev_stage, 4);
    expect(got[0] == static_cast<float>(g.prev_stage_world) && got[332] == got[0], "activation from the previous stage");
  }
  if (g.next_stage >= 0) {
    Request s = g.pipeline->isend(act.data(), act.size(), DType::F32, g.next_stage, 4);
    std::vector<float> grad(17);
    g.pipeline->recv(grad.data(), grad.size(), DType::F32, g.next_stage, 5);
    s.wait();
    expect(grad[16] == -static_cast<float>(g.next_stage_world), "gradient from the next stage");
  }
  if (g.prev_stage >= 0) {
    std::vector<float> grad(17, -static_cast<float>(me));
    g.pipeline->send(grad.data(), grad.size(), DType::F32, g.prev_stage, 5);
  }

  if (pipe == 1) {
    expect(!g.tied, "no tied group without pipeline");
  } else if (topo.is_first_stage(me) || topo.is_last_stage(me)) {
    const auto tied = topo.tied_ranks(me);
    expect(g.tied && g.tied->size() == 2, "tied group of first and last stage");
    double weight = me == tied[0] ? 1.25 : -1.0;  // the first stage's copy wins
    g.tied->broadcast(&weight, 1, DType::F64, 0);
    expect(weight == 1.25, "tied weight broadcast");
    expect(g.tied->all_reduce_value<int64_t>(me) == tied[0] + tied[1], "tied grads all_reduce");
  } else {
    expect(!g.tied, "middle stages have no tied group");
  }

  // An arbitrary sub-group in reverse order, built only by its members.
  if (n >= 2) {
    auto sub = world->new_group({n - 1, 0}, "reversed");
    if (me == n - 1 || me == 0) {
      expect(sub && sub->rank() == (me == n - 1 ? 0 : 1), "sub-group ranks follow the list order");
      expect(sub->all_reduce_value<int32_t>(me, ReduceOp::Max) == n - 1, "sub-group all_reduce");
    } else {
      expect(!sub, "non-members get no group");
    }
  }
  world->barrier();
}

// ---- failures ----------------------------------------------------------------------------------------

void timeout_recv(World& w) {
  auto& c = *w.comm();
  if (c.rank() == 0) {
    float x;
    c.recv(&x, 1, DType::F32, 1, 3);  // rank 1 never sends
    expect(false, "recv returned without a message");
  }
  std::this_thread::sleep_for(std::chrono::seconds(60));  // ended by rank 0's abort
}

void timeout_collective(World& w) {
  auto& c = *w.comm();
  if (c.rank() != 1) {
    std::vector<float> x(10, 1.f);
    c.all_reduce(std::span<float>(x));
    expect(false, "all_reduce returned without rank 1");
  }
  std::this_thread::sleep_for(std::chrono::seconds(60));
}

void liveness(World& w, int victim, bool stop) {
  auto& c = *w.comm();
  std::vector<float> x(4096);
  for (int it = 0;; ++it) {
    if (c.rank() == victim && it == 20) {
      std::fprintf(stderr, "rank %d: %s itself (%s) at iteration %d\n", victim, stop ? "stopping" : "killing",
                   stop ? "SIGSTOP" : "SIGKILL", it);
      std::fflush(stderr);
      ::raise(stop ? SIGSTOP : SIGKILL);
    }
    std::fill(x.begin(), x.end(), 1.f);
    c.all_reduce(std::span<float>(x));
  }
}

// ---- helpers -----------------------------------------------------------------------------------------

int print_topologies(const std::vector<std::string>& args) {
  std::string json = "[";
  for (size_t i = 0; i + 1 < args.size(); i += 2) {
    const int p = std::stoi(args[i]), d = std::stoi(args[i + 1]);
    Topology t(p * d, p);
    if (i) json += ",";
    json += fmt::format("{{\"pipe\":{},\"data\":{},\"coords\":[", p, d);
    for (int r = 0; r < p * d; ++r) {
      const auto c = t.coord(r);
      json += fmt::format("{}[{},{},{}]", r ? "," : "", c.stage, c.data, c.tensor);
    }
    auto lists = [](const std::vector<std::vector<int>>& g) {
      std::vector<std::string> parts;
      for (const auto& v : g) parts.push_back(fmt::format("[{}]", fmt::join(v, ",")));
      return "[" + join(parts, ",") + "]";
    };
    std::vector<std::vector<int>> tied, next;
    for (int r = 0; r < p * d; ++r) {
      if (auto tr = t.tied_ranks(r); !tr.empty() && tr[0] == r) tied.push_back(tr);
      auto nx = t.next_stage_rank(r);
      next.push_back({r, nx ? *nx : -1});
    }
    json += "],\"data_groups\":" + lists(t.data_parallel_groups()) + ",\"pipe_groups\":" + lists(t.pipeline_groups()) +
            ",\"tied_groups\":" + lists(tied) + ",\"next\":" + lists(next) + "}";
  }
  std::printf("%s]\n", json.c_str());
  return 0;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::printf("%d\n", ntohs(a.sin_port));
  ::close(fd);
  return 0;
}

int hold_port(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0) return 1;
  std::printf("holding %d\n", port);
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(60));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc), rest;
  BootstrapOptions opts;
  int victim = 1;
  bool stop = false;
  std::vector<int> pipe_sizes = {1};
  try {
    for (size_t i = 0; i < args.size(); ++i) {
      const auto& a = args[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= args.size()) throw InputError(a, "needs a value");
        return args[++i];
      };
      if (a == "--backend") {
        opts.backend = value();
      } else if (a == "--timeout") {
        double s = 0;
        const auto v = value();
        if (!parse_double(v, s) || s <= 0) throw InputError("--timeout", "'" + v + "' is not a positive number");
        opts.timeout = Millis(static_cast<long long>(s * 1000));
      } else if (a == "--heartbeat-timeout") {
        opts.liveness.heartbeat_timeout = Millis(static_cast<long long>(std::stod(value()) * 1000));
      } else if (a == "--stop") {
        stop = true;
      } else if (a == "--victim") {
        victim = std::stoi(value());
      } else if (a == "--pipe-sizes") {
        pipe_sizes.clear();
        std::string v = value();
        for (size_t pos = 0; pos <= v.size();) {
          size_t comma = v.find(',', pos);
          if (comma == std::string::npos) comma = v.size();
          pipe_sizes.push_back(std::stoi(v.substr(pos, comma - pos)));
          pos = comma + 1;
        }
      } else if (a == "--tag") {
        value();
      } else {
        rest.push_back(a);
      }
    }
    const std::string scenario = rest.empty() ? "all" : rest[0];
    if (scenario == "topology") return print_topologies({rest.begin() + 1, rest.end()});
    if (scenario == "free-port") return free_port();
    if (scenario == "hold-port") return hold_port(std::stoi(rest.at(1)));

    auto world = bootstrap(opts);
    g_rank = world->rank();
    if (world->rank() == 0) std::printf("world: %s\n", world->description().c_str());
    if (scenario == "info") {
      std::printf("rank %d of %d, local rank %d of %d, host %s, backend %s\n", world->rank(), world->size(),
                  world->local_rank(), world->local_size(), world->hostname().c_str(), world->backend());
    } else if (scenario == "all") {
      auto& c = *world->comm();
      check_all_reduce(c);
      check_reduce_scatter(c);
      check_all_gather(c);
      check_broadcast(c);
      check_p2p(c);
      for (int p : pipe_sizes)
        if (world->size() % p == 0) check_groups(*world, p);
      std::printf("rank %d: all checks passed (%s)\n", world->rank(), world->backend());
    } else if (scenario == "timeout-recv") {
      timeout_recv(*world);
    } else if (scenario == "timeout-collective") {
      timeout_collective(*world);
    } else if (scenario == "liveness") {
      liveness(*world, victim, stop);
    } else {
      throw InputError("scenario", "unknown scenario '" + scenario + "'");
    }
    std::fflush(stdout);
    world->finalize();
    return 0;
  } catch (const InputError& e) {
    std::fprintf(stderr, "%s\n", format_input_error(e).c_str());
    return kExitInputError;
  } catch (const RuntimeFault& e) {
    abort_job(kExitRuntimeFault, e.what());
  }
}
