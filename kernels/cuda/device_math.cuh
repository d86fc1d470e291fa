// Device helpers shared by the kernel files: typed loads and stores through a Ref, the bf16
// rounding of the CPU backend, warp and block reductions.
//
// float -> bf16 rounds to nearest even with the same bit formula as kernels/cpu/convert.h (NaN stays
// a quiet NaN with its sign), so a conversion gives the same bits on both backends.
// load8/store8 move 8 consecutive elements with 16-byte accesses; the caller guarantees that the
// address of element i is 16-byte aligned (host side: aligned16 on the base, i % 8 == 0, row
// lengths % 8 == 0) and otherwise uses the scalar load/store.
// Kernel headers (*_kernels.cuh) hold device code only, so tests/cuda can also compile them for the
// CPU emulation of CUDA (FM_CUDA_EMULATION), which supplies the intrinsics and dynamic_smem itself.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/launch.h"

namespace fm::kernels::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

#ifndef FM_CUDA_EMULATION
// The block's dynamic shared memory (the launch's third <<<>>> argument), 128-byte aligned.
__device__ __forceinline__ unsigned char* dynamic_smem() {
  extern __shared__ __align__(128) unsigned char fm_dynamic_smem[];
  return fm_dynamic_smem;
}
#endif

__device__ __forceinline__ uint16_t float_to_bf16_bits(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
__device__ __forceinline__ float bf16_bits_to_float(uint16_t h) {
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
}

__device__ __forceinline__ float load(const Ref& r, int64_t i) {
  switch (r.dtype) {
    case kBF16: return bf16_bits_to_float(static_cast<const uint16_t*>(r.p)[i]);
    case kF16: return __half2float(static_cast<const __half*>(r.p)[i]);
    default: return static_cast<const float*>(r.p)[i];
  }
}

__device__ __forceinline__ void store(const Ref& r, int64_t i, float x) {
  switch (r.dtype) {
    case kBF16: static_cast<uint16_t*>(r.p)[i] = float_to_bf16_bits(x); break;
    case kF16: static_cast<__half*>(r.p)[i] = __float2half_rn(x); break;
    default: static_cast<float*>(r.p)[i] = x; break;
  }
}

__device__ __forceinline__ void load8(const Ref& r, int64_t i, float (&v)[8]) {
  if (r.dtype == kF32) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(r.p) + i);
    const float4 a = p[0], b = p[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    return;
  }
  const uint4 raw = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(r.p) + i);
  const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const uint16_t lo = static_cast<uint16_t>(w[k] & 0xffffu), hi = static_cast<uint16_t>(w[k] >> 16);
    if (r.dtype == kBF16) {
      v[2 * k] = bf16_bits_to_float(lo);
      v[2 * k + 1] = bf16_bits_to_float(hi);
    } else {
      v[2 * k] = __half2float(__ushort_as_half(lo));
      v[2 * k + 1] = __half2float(__ushort_as_half(hi));
    }
  }
}

__device__ __forceinline__ void store8(const Ref& r, int64_t i, const float (&v)[8]) {
  if (r.dtype == kF32) {
    float4* p = reinterpret_cast<float4*>(static_cast<float*>(r.p) + i);
    p[0] = make_float4(v[0], v[1], v[2], v[3]);
    p[1] = make_float4(v[4], v[5], v[6], v[7]);
    return;
  }
  uint32_t w[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    uint16_t lo, hi;
    if (r.dtype == kBF16) {
      lo = float_to_bf16_bits(v[2 * k]);
      hi = float_to_bf16_bits(v[2 * k + 1]);
    } else {
      lo = __half_as_ushort(__float2half_rn(v[2 * k]));
      hi = __half_as_ushort(__float2half_rn(v[2 * k + 1]));
    }
    w[k] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  }
  *reinterpret_cast<uint4*>(static_cast<uint16_t*>(r.p) + i) = make_uint4(w[0], w[1], w[2], w[3]);
}

// kW consecutive elements: kW = 8 through load8/store8, kW = 1 a scalar in v[0].
template <int kW>
__device__ __forceinline__ void load_chunk(const Ref& r, int64_t i, float (&v)[8]) {
  if constexpr (kW == 8)
    load8(r, i, v);
  else
    v[0] = load(r, i);
}
template <int kW>
__device__ __forceinline__ void store_chunk(const Ref& r, int64_t i, const float (&v)[8]) {
  if constexpr (kW == 8)
    store8(r, i, v);
  else
    store(r, i, v[0]);
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFullMask, x, o);
  return x;
}
__device__ __forceinline__ double warp_sum(double x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFullMask, x, o);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, o));
  return x;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024) in a fixed order; every thread
// gets the total. `shared` holds 32 values. Calls __syncthreads.
template <typename T>
__device__ T block_sum(T x, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  x = warp_sum(x);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  T total = lane < warps ? shared[lane] : T(0);
  total = warp_sum(total);
  return total;
}

// Grid-stride launch geometry for n items: capped so a huge n still gives a fixed grid.
inline unsigned grid_for(int64_t n, int threads, int64_t max_blocks = 65535) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > max_blocks) blocks = max_blocks;
  return static_cast<unsigned>(blocks);
}

}  // namespace fm::kernels::cuda
