// Launchers of the attention kernels (attention_kernels.cuh has the design): shared-memory limits,
// grid shapes, and the dispatch over element type and head dimension.
#include <string>

#include "kernels/cuda/attention_kernels.cuh"
#include "runtime/base/error.h"

namespace fm::kernels::cuda {

namespace {

// ---- launch --------------------------------------------------------------------------------------
int optin_shared_bytes() {
  int device = 0, bytes = 0;
  check_cuda(cudaGetDevice(&device), "attention: cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
             "attention: shared memory limit");
  return bytes;
}

// Raises the kernel's dynamic shared memory limit (needed above 48 KiB) after checking the device.
template <typename Kernel>
void prepare(Kernel kernel, size_t bytes, const char* name, int D) {
  const int limit = optin_shared_bytes();
  if (bytes > static_cast<size_t>(limit))
    throw RuntimeFault(std::string("cuda: ") + name + " with head dimension " + std::to_string(D) + " needs " +
                       std::to_string(bytes) + " bytes of shared memory per block; this GPU allows " +
                       std::to_string(limit));
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
             name);
}

template <typename T, int D>
void forward_typed(cudaStream_t s, Ref out, Ref lse, Ref qkv, const AttentionShape& shape) {
  using C = Cfg<T, D>;
  const Dims d = dims_of(shape);
  prepare(attention_forward_kernel<T, D>, C::kFwdBytes, "attention_forward", D);
  const dim3 grid(attention_tiles<T, D>(shape), shape.H, shape.B);
  attention_forward_kernel<T, D><<<grid, C::kThreads, C::kFwdBytes, s>>>(
      static_cast<T*>(out.p), lse, static_cast<const T*>(qkv.p), d, rows_aligned<T>(qkv.p, d.W));
  check_launch("attention_forward");
}

template <typename T, int D>
void backward_typed(cudaStream_t s, Ref dqkv, Ref dout, Ref qkv, Ref out, Ref lse, const AttentionShape& shape,
                    Scratch& scratch) {
  using C = Cfg<T, D>;
  const Dims d = dims_of(shape);
  const int64_t N = int64_t(shape.B) * shape.T;
  auto* dv_rows = static_cast<float*>(scratch.get(sizeof(float) * size_t(N) * size_t(shape.H), s));
  const int64_t warps = N * shape.H;
  attention_dot_kernel<T><<<grid_for(warps * 32, 256, int64_t(1) << 30), 256, 0, s>>>(
      dv_rows, static_cast<const T*>(dout.p), static_cast<const T*>(out.p), static_cast<int>(N), shape.T, shape.H,
      shape.D);
  check_launch("attention_backward: rowsum(dO*O)");

  const unsigned tiles = attention_tiles<T, D>(shape);
  const bool vec_in = rows_aligned<T>(qkv.p, d.W) && rows_aligned<T>(dqkv.p, d.W);
  const bool vec_dout = rows_aligned<T>(dout.p, d.HD);
  prepare(attention_dkdv_kernel<T, D>, C::kDkvBytes, "attention_backward (dK, dV)", D);
  attention_dkdv_kernel<T, D><<<dim3(tiles, shape.Hkv, shape.B), C::kThreads, C::kDkvBytes, s>>>(
      static_cast<T*>(dqkv.p), static_cast<const T*>(dout.p), static_cast<const T*>(qkv.p), lse, dv_rows, d, vec_in,
      vec_dout);
  check_launch("attention_backward (dK, dV)");
  prepare(attention_dq_kernel<T, D>, C::kDqBytes, "attention_backward (dQ)", D);
  attention_dq_kernel<T, D><<<dim3(tiles, shape.H, shape.B), C::kThreads, C::kDqBytes, s>>>(
      static_cast<T*>(dqkv.p), static_cast<const T*>(dout.p), static_cast<const T*>(qkv.p), lse, dv_rows, d, vec_in,
      vec_dout);
  check_launch("attention_backward (dQ)");
}

// Calls f.template operator()<T, D>() for the dtype and head dimension of the call.
template <typename F>
void dispatch(int dtype, int D, F&& f) {
  FM_CHECK(dtype == kF32 || dtype == kBF16, "CudaOps attention: f32 or bf16 tensors only");
  const bool is_bf16 = dtype == kBF16;
  switch (D) {
    case 16: return is_bf16 ? f.template operator()<bf16, 16>() : f.template operator()<float, 16>();
    case 32: return is_bf16 ? f.template operator()<bf16, 32>() : f.template operator()<float, 32>();
    case 64: return is_bf16 ? f.template operator()<bf16, 64>() : f.template operator()<float, 64>();
    case 128: return is_bf16 ? f.template operator()<bf16, 128>() : f.template operator()<float, 128>();
    default: break;
  }
  FM_CHECK(false, "CudaOps attention: head dimension " + std::to_string(D) + " is not compiled (16, 32, 64, 128)");
}

void check_shape(const AttentionShape& s) {
  FM_CHECK(s.B > 0 && s.T > 0 && s.H > 0 && s.Hkv > 0 && s.D > 0, "CudaOps attention: empty shape");
  FM_CHECK(s.H % s.Hkv == 0, "CudaOps attention: H must be a multiple of Hkv");
  FM_CHECK(s.B <= 65535 && s.H <= 65535, "CudaOps attention: B and H must be at most 65535");
}

}  // namespace

bool attention_supports_head_dim(int D) { return D == 16 || D == 32 || D == 64 || D == 128; }

void launch_attention_forward(cudaStream_t s, Ref out, Ref lse, Ref qkv, const AttentionShape& shape) {
  check_shape(shape);
  FM_CHECK(out.dtype == qkv.dtype, "CudaOps attention_forward: out and qkv must have one dtype");
  dispatch(qkv.dtype, shape.D, [&]<typename T, int D>() { forward_typed<T, D>(s, out, lse, qkv, shape); });
}

void launch_attention_backward(cudaStream_t s, Ref dqkv, Ref dout, Ref qkv, Ref out, Ref lse,
                               const AttentionShape& shape, Scratch& scratch) {
  check_shape(shape);
  FM_CHECK(dqkv.dtype == qkv.dtype && dout.dtype == qkv.dtype && out.dtype == qkv.dtype,
           "CudaOps attention_backward: dqkv, dout, qkv and out must have one dtype");
  dispatch(qkv.dtype, shape.D,
           [&]<typename T, int D>() { backward_typed<T, D>(s, dqkv, dout, qkv, out, lse, shape, scratch); });
}

}  // namespace fm::kernels::cuda
