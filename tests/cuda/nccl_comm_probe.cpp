// The NCCL communicator across ranks on GPUs, started by nccl_tests.sh under mpirun.
//   nccl_comm_probe --count-gpus   prints "gpus N" (N = visible devices) or "gpus 0 <reason>"
//   nccl_comm_probe                every rank (one GPU each) runs the checks below and prints
//                                  "nccl checks passed" at the end
// Checks, with values computed from the rank numbers: all_reduce (sum, max, in place),
// reduce_scatter, all_gather (in place), broadcast, barrier, a simultaneous send/recv exchange,
// receives posted early that complete one by one, host buffers handed to the bootstrap
// communicator, the async all_reduce ordered before a kernel by compute_waits, a sub-group with
// permuted ranks, and a collective one rank skips: the other's times out with a RuntimeFault
// naming the group. A failed check prints "CHECK FAILED" and ends the job with code 3.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/cuda_probe.h"
#include "runtime/base/error.h"
#include "runtime/comm/bootstrap.h"
#include "runtime/comm/nccl_comm.h"

using namespace fm;
using namespace fm::comm;
namespace kc = fm::kernels::cuda;

namespace {

int g_rank = 0;

void expect(bool ok, const std::string& what) {
  if (ok) return;
  std::printf("rank %d: CHECK FAILED: %s\n", g_rank, what.c_str());
  std::fflush(stdout);
  abort_job(3, fmt::format("rank {}: check failed: {}", g_rank, what));
}

// A device buffer of floats owned by the CUDA ops.
struct Buf {
  kernels::Ops& ops;
  float* p;
  size_t n;
  Buf(kernels::Ops& o, size_t count) : ops(o), p(static_cast<float*>(o.alloc(count * 4))), n(count) {}
  ~Buf() { ops.release(p); }
  void set(const std::vector<float>& host) { ops.copy(kernels::f32(p), kernels::f32(host.data()), int64_t(n)); }
  std::vector<float> get() const {
    std::vector<float> host(n);
    ops.copy(kernels::f32(host.data()), kernels::f32(p), int64_t(n));
    return host;
  }
};

std::vector<float> pattern(size_t n, int rank) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = float(rank + 1) * 1000.0f + float(i % 997);
  return v;
}

void run_checks(World& world, kernels::Ops& ops, int device) {
  const CommPtr comm = make_nccl_communicator(world.comm(), device, std::chrono::seconds(60));
  NcclCommunicator* nccl = as_nccl(*comm);
  expect(nccl != nullptr, "make_nccl_communicator returns an NcclCommunicator");
  nccl->set_compute_stream(kc::as_cuda_ops(ops)->stream());
  const int p = comm->size(), r = comm->rank();
  expect(std::string(comm->backend()) == "nccl", "backend name");

  const size_t n = 4099;
  {  // all_reduce sum, out of place, and max in place
    Buf in(ops, n), out(ops, n);
    in.set(pattern(n, r));
    comm->all_reduce(in.p, out.p, n, DType::F32, ReduceOp::Sum);
    const auto got = out.get();
    bool ok = true;
    for (size_t i = 0; i < n; ++i) {
      float want = 0;
      for (int q = 0; q < p; ++q) want += pattern(n, q)[i];
      ok = ok && got[i] == want;
    }
    expect(ok, "all_reduce sum");
    comm->all_reduce(in.p, n, DType::F32, ReduceOp::Max);
    expect(in.get() == pattern(n, p - 1), "all_reduce max in place");
  }
  {  // reduce_scatter into this rank's block (in place), then all_gather back (in place)
    const size_t block = 1000;
    Buf buf(ops, block * p);
    buf.set(pattern(block * p, r));
    comm->reduce_scatter(buf.p, buf.p + r * block, block, DType::F32, ReduceOp::Sum);
    auto got = buf.get();
    bool ok = true;
    for (size_t i = 0; i < block; ++i) {
      float want = 0;
      for (int q = 0; q < p; ++q) want += pattern(block * p, q)[r * block + i];
      ok = ok && got[r * block + i] == want;
    }
    expect(ok, "reduce_scatter");
    comm->all_gather(buf.p + r * block, buf.p, block, DType::F32);
    got = buf.get();
    for (int q = 0; q < p; ++q)
      for (size_t i = 0; i < block; ++i) {
        float want = 0;
        for (int s = 0; s < p; ++s) want += pattern(block * p, s)[q * block + i];
        ok = ok && got[q * block + i] == want;
      }
    expect(ok, "all_gather after reduce_scatter");
  }
  {  // broadcast from the last rank, barrier
    Buf buf(ops, n);
    buf.set(pattern(n, r));
    comm->broadcast(buf.p, n, DType::F32, p - 1);
    expect(buf.get() == pattern(n, p - 1), "broadcast");
    comm->barrier();
  }
  {  // ring exchange: every rank sends to the next and receives from the previous at once
    Buf out(ops, n), in(ops, n);
    out.set(pattern(n, r));
    Request s = comm->isend(out.p, n, DType::F32, (r + 1) % p, 5);
    Request q = comm->irecv(in.p, n, DType::F32, (r + p - 1) % p, 5);
    q.wait();
    s.wait();
    expect(in.get() == pattern(n, (r + p - 1) % p), "isend/irecv ring exchange");
  }
  if (r < 2) {  // early receives complete one by one: rank 1 sends its second message only after the
                // first one arrived and rank 0 answered it (a receive must not wait for a later one)
    const int other = 1 - r;
    Buf m1(ops, n), m2(ops, n), a(ops, n), b(ops, n);
    if (r == 0) {
      Request r1 = comm->irecv(m1.p, n, DType::F32, other, 11);
      Request r2 = comm->irecv(m2.p, n, DType::F32, other, 11);
      a.set(pattern(n, 10));
      Request sa = comm->isend(a.p, n, DType::F32, other, 12);
      r1.wait();
      b.set(pattern(n, 11));
      Request sb = comm->isend(b.p, n, DType::F32, other, 12);
      r2.wait();
      sa.wait();
      sb.wait();
      expect(m1.get() == pattern(n, 20) && m2.get() == pattern(n, 21), "early-posted receives, one by one");
    } else {
      Request ra = comm->irecv(a.p, n, DType::F32, other, 12);
      ra.wait();
      m1.set(pattern(n, 20));
      Request s1 = comm->isend(m1.p, n, DType::F32, other, 11);
      Request rb = comm->irecv(b.p, n, DType::F32, other, 12);
      rb.wait();
      m2.set(pattern(n, 21));
      Request s2 = comm->isend(m2.p, n, DType::F32, other, 11);
      s1.wait();
      s2.wait();
      expect(a.get() == pattern(n, 10) && b.get() == pattern(n, 11), "answers of the early-posted receives");
    }
  }
  {  // host buffers go through the bootstrap communicator
    double host[2] = {double(r), 1.0};
    comm->all_reduce(host, 2, DType::F64, ReduceOp::Sum);
    expect(host[0] == double(p) * (p - 1) / 2 && host[1] == double(p), "host-memory all_reduce");
  }
  {  // async all_reduce, then a kernel on the compute stream ordered after it by compute_waits
    Buf buf(ops, n);
    buf.set(std::vector<float>(n, 1.0f));
    Request req = nccl->all_reduce_async(buf.p, buf.p, n, DType::F32, ReduceOp::Sum);
    nccl->compute_waits();
    ops.scale(kernels::f32(buf.p), 0.5f, int64_t(n));
    req.wait();
    expect(buf.get() == std::vector<float>(n, 0.5f * p), "all_reduce_async + compute_waits");
  }
  {  // a sub-group over every rank in reverse order: group rank = position in the list
    std::vector<int> reversed;
    for (int q = p - 1; q >= 0; --q) reversed.push_back(q);
    CommPtr g = comm->new_group(reversed, "reversed");
    expect(g && as_nccl(*g) && g->rank() == p - 1 - r, "new_group ranks follow the list");
    as_nccl(*g)->set_compute_stream(kc::as_cuda_ops(ops)->stream());
    Buf buf(ops, 1);
    buf.set({float(g->rank())});
    g->all_reduce(buf.p, 1, DType::F32, ReduceOp::Sum);
    expect(buf.get()[0] == float(p) * (p - 1) / 2, "all_reduce in a sub-group");
  }
  {  // timeout: the last rank skips a collective; the others fail within the timeout, naming the group
    CommPtr g = comm->new_group(world.comm()->global_ranks(), "timeout-check");
    g->set_timeout(std::chrono::seconds(3));
    as_nccl(*g)->set_compute_stream(kc::as_cuda_ops(ops)->stream());
    Buf buf(ops, 16);
    if (r != p - 1) {
      std::string message;
      try {
        g->all_reduce(buf.p, 16, DType::F32, ReduceOp::Sum);
      } catch (const RuntimeFault& e) {
        message = e.what();
      }
      expect(message.find("timed out after 3 s") != std::string::npos &&
                 message.find("timeout-check group") != std::string::npos,
             "a skipped collective times out naming the group, got: " + message);
      std::printf("rank %d: timeout message: %s\n", world.rank(), message.c_str());
    }
    world.comm()->barrier();
  }
  std::printf("rank %d: nccl checks passed (device %d)\n", world.rank(), device);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--count-gpus") {
    std::string why;
    if (!kc::device_available(&why)) {
      std::printf("gpus 0 %s\n", why.c_str());
      return 0;
    }
    std::printf("gpus %d\n", kc::link_report().device_count);
    return 0;
  }
  try {
    auto world = bootstrap();
    g_rank = world->rank();
    const int device = kc::select_cuda_device(world->local_rank());
    auto ops = kc::make_cuda_ops(device);
    run_checks(*world, *ops, device);
    world->finalize();
  } catch (const InputError& e) {
    std::fprintf(stderr, "%s\n", format_input_error(e).c_str());
    return kExitInputError;
  } catch (const std::exception& e) {
    abort_job(kExitRuntimeFault, e.what());
  }
  return 0;
}
