// A CPU stand-in for the parts of the CUDA execution model our kernels use, so the device code of
// kernels/cuda/*_kernels.cuh runs (slowly) on a machine without a GPU and is checked against the
// CPU backend in ordinary CI.
//
// Model: blocks run one after another; the threads of a block are real std::threads, so barriers
// and shuffles really synchronise. __syncthreads and __syncwarp are std::barriers (a thread that
// returns drops out of them, as exited GPU threads do); __shfl_xor_sync exchanges through per-warp
// slots between two warp barriers. Static __shared__ variables become function statics (one copy,
// blocks are sequential); dynamic shared memory is one buffer per launch, filled with 0xFF (NaN
// in fp32 and bf16) before every block so a read of an unwritten element poisons the result, and
// followed by a guard zone checked after every block. WMMA fragments hold the whole 16x16 tile;
// load/store check the 256-bit pointer alignment and the leading-dimension rules of the CUDA
// documentation, and the products use the documented row/col-major element positions.
// Not modelled: real scheduling and memory-model corner cases, register limits, shared-memory
// limits and bank conflicts, performance. Include this header before any kernel header.
#pragma once

#define FM_CUDA_EMULATION 1

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <barrier>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#undef __shared__
#define __shared__ static
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

namespace fm::cuda_emulation {

[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "CUDA emulation: %s\n", what);
  std::abort();
}

struct BlockContext {
  explicit BlockContext(int threads) : block(threads) {
    for (int w = 0; w * 32 < threads; ++w) warps.push_back(std::make_unique<std::barrier<>>(std::min(32, threads - 32 * w)));
    slots.resize(warps.size());
  }
  std::barrier<> block;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<std::array<uint64_t, 32>> slots;
};

inline thread_local BlockContext* tl_block = nullptr;
inline unsigned char* g_dynamic_smem = nullptr;

inline std::barrier<>& warp_barrier() { return *tl_block->warps[threadIdx.x / 32]; }

}  // namespace fm::cuda_emulation

inline void __syncthreads() { fm::cuda_emulation::tl_block->block.arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { fm::cuda_emulation::warp_barrier().arrive_and_wait(); }

template <typename T>
inline T __shfl_xor_sync(unsigned, T value, int lane_mask, int = 32) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  auto& ctx = *fm::cuda_emulation::tl_block;
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  ctx.slots[warp][lane] = bits;
  fm::cuda_emulation::warp_barrier().arrive_and_wait();
  const uint64_t other = ctx.slots[warp][lane ^ static_cast<unsigned>(lane_mask)];
  fm::cuda_emulation::warp_barrier().arrive_and_wait();
  T out;
  std::memcpy(&out, &other, sizeof(T));
  return out;
}

inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline int atomicAdd(int* p, int v) { return std::atomic_ref<int>(*p).fetch_add(v); }

namespace fm::kernels::cuda {
inline unsigned char* dynamic_smem() { return fm::cuda_emulation::g_dynamic_smem; }
}  // namespace fm::kernels::cuda

// ---- WMMA --------------------------------------------------------------------------------------
namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

// Every lane holds the whole tile; only lane 0's copy is stored (the other lanes' would be equal).
template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulation knows 16x16x16 only");
  float x[16][16];
};

template <typename F>
void fill_fragment(F& f, float v) {
  for (auto& row : f.x)
    for (float& e : row) e = v;
}

inline void check_access(const void* p, unsigned ldm, size_t elem) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) fm::cuda_emulation::die("WMMA pointer is not 256-bit aligned");
  if ((ldm * elem) % 16 != 0) fm::cuda_emulation::die("WMMA leading dimension is not a multiple of 16 bytes");
}

template <typename T>
float as_float(T v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __bfloat162float(v);
  else if constexpr (std::is_same_v<T, __half>)
    return __half2float(v);
  else
    return static_cast<float>(v);
}

// Operand (i, j) of a matrix_a (row m, column k) or matrix_b (row k, column n).
template <typename Use, typename T, typename Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* p, unsigned ldm) {
  check_access(p, ldm, sizeof(T));
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j)
      f.x[i][j] = as_float(std::is_same_v<Layout, row_major> ? p[i * ldm + j] : p[i + j * ldm]);
}

template <typename TA, typename LA, typename TB, typename LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, TA, LA>& a,
              const fragment<matrix_b, 16, 16, 16, TB, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  if (threadIdx.x % 32 != 0) return;  // only lane 0's tile is ever stored
  float out[16][16];
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float acc = c.x[i][j];
      for (int k = 0; k < 16; ++k) acc = std::fma(a.x[i][k], b.x[k][j], acc);
      out[i][j] = acc;
    }
  std::memcpy(d.x, out, sizeof(out));
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm,
                              layout_t layout) {
  check_access(p, ldm, sizeof(float));
  if (threadIdx.x % 32 != 0) return;
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) (layout == mem_row_major ? p[i * ldm + j] : p[i + j * ldm]) = f.x[i][j];
}

}  // namespace nvcuda::wmma

namespace fm::cuda_emulation {

constexpr size_t kGuardBytes = 4096;

// Runs kernel<<<grid, block, smem_bytes>>>(args...) on the host. One-dimensional blocks only.
template <typename... Params, typename... Args>
void launch(dim3 grid, dim3 block, size_t smem_bytes, void (*kernel)(Params...), Args... args) {
  if (block.y != 1 || block.z != 1) die("only one-dimensional blocks are emulated");
  const int threads = static_cast<int>(block.x);
  std::vector<unsigned char> storage(smem_bytes + kGuardBytes + 256);
  auto* base = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(storage.data()) + 255) / 256 * 256);
  g_dynamic_smem = base;
  blockDim = block;
  gridDim = grid;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        std::memset(base, 0xff, smem_bytes);
        std::memset(base + smem_bytes, 0xa5, kGuardBytes);
        BlockContext ctx(threads);
        std::vector<std::thread> pool;
        pool.reserve(static_cast<size_t>(threads));
        for (int t = 0; t < threads; ++t)
          pool.emplace_back([&, t] {
            threadIdx = uint3{static_cast<unsigned>(t), 0, 0};
            blockIdx = uint3{x, y, z};
            tl_block = &ctx;
            kernel(static_cast<Params>(args)...);
            ctx.warps[static_cast<size_t>(t / 32)]->arrive_and_drop();
            ctx.block.arrive_and_drop();
          });
        for (auto& th : pool) th.join();
        for (size_t i = 0; i < kGuardBytes; ++i)
          if (base[smem_bytes + i] != 0xa5) die("a kernel wrote past its dynamic shared memory");
      }
  g_dynamic_smem = nullptr;
}

}  // namespace fm::cuda_emulation
