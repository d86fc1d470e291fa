// Parallel loops over fixed blocks, and per-thread scratch memory, for the CPU kernels.
//
// Determinism: every loop here cuts its range into blocks whose boundaries depend on the range and
// the block size only, never on the number of threads or on scheduling. A kernel that reduces inside
// a block and combines the block results in block order therefore gives the same bits on 1 thread
// and on 64. All loops run in the caller's TBB task arena (CpuOps runs each op inside its own arena).
#pragma once

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fm::kernels::cpu {

// body(begin, end) for each block [b*grain, min(n, (b+1)*grain)) of [0, n); blocks run in parallel.
template <typename Body>
void for_blocks(int64_t n, int64_t grain, const Body& body) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t blocks = (n + grain - 1) / grain;
  if (blocks == 1) {
    body(int64_t{0}, n);
    return;
  }
  tbb::parallel_for(int64_t{0}, blocks,
                    [&](int64_t b) { body(b * grain, std::min(n, (b + 1) * grain)); });
}

// body(i) for each i in [0, n), each index its own task (for coarse work items such as heads).
template <typename Body>
void for_each_task(int64_t n, const Body& body) {
  if (n <= 0) return;
  if (n == 1) {
    body(int64_t{0});
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 1),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t i = r.begin(); i < r.end(); ++i) body(i);
                    },
                    tbb::simple_partitioner());
}

// Slots of thread_scratch: one per buffer that may be held at the same time on a thread.
enum ScratchSlot : int {
  kScratchScores = 0,    // attention: scores / probabilities of a query block
  kScratchRowScale = 1,  // attention forward: 1 / row sums
  kScratchScoreGrad = 2, // attention backward: dP and dS of a query block
  kScratchPartials = 3,  // calling thread: per-block partial sums reduced after a parallel loop
};

// A per-thread buffer of at least n elements, reused across calls. A task holding one must not run
// a nested parallel loop (another task on this thread could then take the same buffer); BLAS calls
// are single-threaded and therefore safe.
template <typename T, int Slot>
T* thread_scratch(size_t n) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

}  // namespace fm::kernels::cpu
