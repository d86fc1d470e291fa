// The CPU backend of kernels/ops.h: fp32 compute, oneTBB threads, OpenBLAS matrix products.
//
// Threads: each CpuOps owns a TBB task arena of `threads` workers (0: every core the process may
// run on) and runs every op inside it; ranks that share a node should each ask for their share of
// the cores. OpenBLAS is switched to one thread for the whole process and TBB alone parallelises,
// matrix products included (kernels/cpu/gemm.h explains why). Ops are synchronous.
// Types: views are F32 (tokens and targets I32), except copy(), which converts between F32, BF16
// and F16, and adam_update's param_out, which may be any of the three.
// Determinism: every op gives the same bits run to run and for any thread count (work is cut into
// blocks fixed by the shapes, reductions combine blocks in order).
// The math lives in kernels/cpu/cpu_kernels.h as templates over float and double.
#pragma once

#include <memory>

#include "kernels/ops.h"

namespace fm::kernels {

std::unique_ptr<Ops> make_cpu_ops(int threads = 0);

}  // namespace fm::kernels
