// The CUDA backend of kernels/ops.h: every op on one device and one compute stream.
//
// Contract beyond ops.h (docs/gpu.md has the design of each kernel):
//  - Views may be F32 or BF16 (F16 where a conversion is all that is asked: copy, adam's param_out),
//    each view independently unless an op says otherwise; arithmetic is fp32 everywhere (fp32
//    accumulators, fp32 softmax statistics), reductions that return a double accumulate in double.
//    Attention needs qkv, out, dout and dqkv of one type (lse may be either); GEMMs need a and b of
//    one type, and out of that type or F32 (bf16 x bf16 -> fp32 is how weight gradients accumulate
//    in fp32). A combination outside these is an internal error (FM_CHECK).
//  - Ops are asynchronous on the compute stream, except those that return a host value
//    (cross_entropy, sum_squares) and copies whose source or destination is host memory: those
//    return when their result is on the host / the host buffer may be reused.
//  - copy() accepts host or device pointers on either side (ops.h: the model uploads parameters and
//    tokens from host memory); other ops take device memory from alloc().
//  - Results are deterministic: the same inputs and shapes give the same bits run to run. No op
//    uses floating-point atomics; reductions run in orders fixed by the shape alone.
//  - Precision: GEMMs run on cuBLASLt with fp32 accumulation; fp32 GEMMs do NOT use TF32 unless
//    CudaOptions::allow_tf32 (off by default, so fp32 results match the CPU backend to ~1e-6).
//  - A CUDA or cuBLAS failure throws fm::RuntimeFault naming the device and the call.
//  - Thread use: one thread at a time; every op makes the backend's device current first.
//
// This header needs no CUDA headers; the library behind it exists only when meson found CUDA
// (fm_kernels_cuda_dep).
#pragma once

#include <cstddef>
#include <memory>

#include "kernels/ops.h"

namespace fm::kernels::cuda {

struct CudaOptions {
  bool allow_tf32 = false;                       // fp32 GEMMs through TF32 tensor cores
  size_t gemm_workspace_bytes = size_t{32} << 20;  // cuBLASLt workspace (32 MiB suits Hopper)
};

// The CUDA Ops, with what the communicator and the engine need to order work against it.
class CudaOps : public Ops {
 public:
  virtual int device() const = 0;
  // The compute stream, as a cudaStream_t (void* so this header stays CUDA-free).
  virtual void* stream() const = 0;
};

// Makes `device` current for the calling thread and builds the backend on it. Throws
// fm::RuntimeFault when the device cannot be used (no driver, no such device).
std::unique_ptr<Ops> make_cuda_ops(int device, const CudaOptions& options = {});

// The CudaOps behind an Ops made by make_cuda_ops, or nullptr for another backend.
CudaOps* as_cuda_ops(Ops& ops);

// The GPU of this rank: index local_rank among the devices CUDA_VISIBLE_DEVICES leaves visible
// (local_rank < 0, a single-process run: device 0). More local ranks than GPUs is an fm::InputError
// naming LOCAL_RANK, unless allow_sharing, where ranks share GPUs round-robin (local_rank % count):
// for tests of the kernels only, since NCCL refuses two ranks of one communicator on one GPU.
// No visible GPU is an fm::RuntimeFault.
int select_cuda_device(int local_rank, bool allow_sharing = false);

}  // namespace fm::kernels::cuda
