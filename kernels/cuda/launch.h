// Internal interface between the CudaOps class (cuda_ops.cpp) and the kernel files (*.cu).
//
// Each launch_* function enqueues its kernels on `stream` and returns; shapes are the ops.h ones.
// A Ref is a device pointer with its element type; kernels read and write through it in fp32, so
// one compiled kernel serves every combination of F32/BF16/F16 tensors. The type switch is the same
// for every thread of a launch (no divergence) and costs nothing next to the memory traffic.
// Scratch: kernels that need temporary device memory take it from a Scratch, which belongs to the
// CudaOps and is only ever used by one op at a time on the one stream.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/adam_coefficients.h"
#include "kernels/ops.h"

namespace fm::kernels::cuda {

// Element type codes seen by device code (the values of kernels::DType).
enum : int { kF32 = 0, kBF16 = 1, kF16 = 2, kI32 = 3 };
static_assert(static_cast<int>(DType::F32) == kF32 && static_cast<int>(DType::BF16) == kBF16 &&
              static_cast<int>(DType::F16) == kF16 && static_cast<int>(DType::I32) == kI32);

struct Ref {
  void* p = nullptr;
  int dtype = kF32;
};
inline Ref ref(View v) { return {v.ptr, static_cast<int>(v.dtype)}; }

// Throws fm::RuntimeFault "cuda: <what>: <error name>: <text>" unless e is cudaSuccess.
void check_cuda(cudaError_t e, const char* what);
// After a kernel launch: configuration errors surface here (execution errors at the next sync).
void check_launch(const char* kernel);

// Growable device scratch; get() may synchronize the stream (only when it has to grow).
class Scratch {
 public:
  Scratch() = default;
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get(size_t bytes, cudaStream_t stream);

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Byte offsets of consecutive pieces carved out of one scratch block (256-byte aligned).
class Carve {
 public:
  size_t add(size_t bytes) {
    const size_t at = total_;
    total_ += (bytes + 255) / 256 * 256;
    return at;
  }
  size_t total() const { return total_; }

 private:
  size_t total_ = 0;
};

bool aligned16(const void* p);

// ---- elementwise.cu ----------------------------------------------------------------------------
void launch_convert(cudaStream_t s, Ref dst, Ref src, int64_t n);
void launch_add(cudaStream_t s, Ref out, Ref a, Ref b, int64_t n);
void launch_scale(cudaStream_t s, Ref x, float factor, int64_t n);
// Sum of squares in double into *result (device memory), deterministic for a given n.
void launch_sum_squares(cudaStream_t s, Ref x, int64_t n, double* result, Scratch& scratch);
void launch_swiglu_forward(cudaStream_t s, Ref out, Ref gateup, int N, int F);
void launch_swiglu_backward(cudaStream_t s, Ref dgateup, Ref dout, Ref gateup, int N, int F);
void launch_rope(cudaStream_t s, Ref qkv, Ref cos_sin, const AttentionShape& shape, bool inverse);
void launch_embedding_forward(cudaStream_t s, Ref out, const int32_t* tokens, Ref table, int N, int C);

// Adam coefficients as float, formed on the host exactly as the CPU backend forms them.
using AdamCoefficients = fm::kernels::AdamCoefficients<float>;
void launch_adam(cudaStream_t s, Ref master, Ref grad, Ref m, Ref v, Ref param_out, int64_t n, const AdamStep& step);

// ---- rmsnorm.cu ----------------------------------------------------------------------------------
void launch_rmsnorm_forward(cudaStream_t s, Ref out, Ref rstd, Ref x, Ref w, int N, int C, float eps);
void launch_rmsnorm_backward(cudaStream_t s, Ref dx, Ref dw, Ref dout, Ref x, Ref w, Ref rstd, int N, int C,
                             bool accumulate_dx, Scratch& scratch);

// ---- embedding.cu --------------------------------------------------------------------------------
// dtable_rows(row_end - row_begin, C) += rows of dout whose token is in [row_begin, row_end), summed
// in token order after a stable sort of the tokens.
void launch_embedding_backward(cudaStream_t s, Ref dtable_rows, Ref dout, const int32_t* tokens, int N, int C,
                               int row_begin, int row_end, Scratch& scratch);

// ---- cross_entropy.cu ----------------------------------------------------------------------------
// Writes into *result (device): the summed loss and the number of rows whose target was outside
// [0, V) and not -100 (an internal error the caller reports).
struct CrossEntropyResult {
  double loss_sum;
  int bad_targets;
};
void launch_cross_entropy(cudaStream_t s, Ref losses, Ref dlogits, Ref logits, const int32_t* targets, int N,
                          int V, float grad_scale, CrossEntropyResult* result, Scratch& scratch);

// ---- attention.cu --------------------------------------------------------------------------------
// Head dimensions the attention kernels are compiled for.
bool attention_supports_head_dim(int D);
// Both check the device's shared-memory limit first (fm::RuntimeFault naming the need and the limit).
void launch_attention_forward(cudaStream_t s, Ref out, Ref lse, Ref qkv, const AttentionShape& shape);
void launch_attention_backward(cudaStream_t s, Ref dqkv, Ref dout, Ref qkv, Ref out, Ref lse,
                               const AttentionShape& shape, Scratch& scratch);

}  // namespace fm::kernels::cuda
