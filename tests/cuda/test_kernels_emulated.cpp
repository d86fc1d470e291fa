// The device code of the CUDA backend, run on the CPU by the CUDA emulation (cuda_emulation.h), against
// the CPU backend: attention (fp32 path and the bf16 WMMA path), RMSNorm, cross-entropy, SwiGLU,
// RoPE, the embedding lookup and backward, the sum of squares, Adam. The launch geometry mirrors
// the launchers in kernels/cuda/*.cu. This runs everywhere the CUDA headers exist, GPU or not; it
// checks the kernels' indexing, tiling, masking, synchronisation structure and shared-memory layout,
// not the hardware (test_cuda_ops does that on a GPU).
#include "tests/cuda/cuda_emulation.h"
// Kernel headers after the emulation.
#include "kernels/cuda/attention_kernels.cuh"
#include "kernels/cuda/cross_entropy_kernels.cuh"
#include "kernels/cuda/elementwise_kernels.cuh"
#include "kernels/cuda/embedding_kernels.cuh"
#include "kernels/cuda/rmsnorm_kernels.cuh"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/cpu_ops.h"
#include "tests/kernels/test_util.h"

namespace emu = fm::cuda_emulation;
using namespace fm::kernels;
using fm::kernels::cuda::Ref;

namespace {

using FVec = std::vector<float>;
using bf16 = __nv_bfloat16;

Ops& cpu_ops() {
  static auto ops = make_cpu_ops(1);
  return *ops;
}

FVec random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  return testing::to_float(testing::random_vec(n, seed, lo, hi));
}

// Host storage in fp32 or bf16 holding the values of a float vector (rounded for bf16).
struct Tensor {
  DType t;
  FVec f;
  std::vector<bf16> h;
  Tensor(const FVec& v, DType type) : t(type) {
    if (t == DType::F32) {
      f = v;
    } else {
      h.resize(v.size());
      for (size_t i = 0; i < v.size(); ++i) h[i] = __ushort_as_bfloat16(cpu::float_to_bf16(v[i]));
    }
  }
  void* data() { return t == DType::F32 ? static_cast<void*>(f.data()) : static_cast<void*>(h.data()); }
  Ref ref() { return {data(), static_cast<int>(t)}; }
  FVec values() const {
    if (t == DType::F32) return f;
    FVec out(h.size());
    for (size_t i = 0; i < h.size(); ++i) out[i] = __bfloat162float(h[i]);
    return out;
  }
  void poison() {
    std::fill(f.begin(), f.end(), std::nanf(""));
    for (auto& x : h) x = __ushort_as_bfloat16(0xffff);
  }
};

double tolerance(DType t) { return t == DType::F32 ? 1e-5 : 1e-2; }
double rel_err(const FVec& got, const FVec& want) {
  double diff = 0, scale = 0;
  if (got.size() != want.size()) return INFINITY;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff = std::max(diff, std::abs(double(got[i]) - double(want[i])));
    scale = std::max(scale, std::abs(double(want[i])));
  }
  return scale == 0 ? diff : diff / scale;
}

// ---- attention -------------------------------------------------------------------------------------
// misaligned: every buffer starts one element past a 16-byte boundary, so tiles load element by element.
template <typename T, int D>
void attention_case(const AttentionShape& s, uint32_t seed, bool misaligned = false) {
  using namespace fm::kernels::cuda;
  using C = Cfg<T, D>;
  constexpr DType kType = std::is_same_v<T, float> ? DType::F32 : DType::BF16;
  INFO("B=" << s.B << " T=" << s.T << " H=" << s.H << " Hkv=" << s.Hkv << " D=" << s.D << " " << dtype_name(kType)
              << (misaligned ? " misaligned" : ""));
  const int64_t N = int64_t(s.B) * s.T;
  const size_t skip = misaligned ? 1 : 0;
  Tensor qkv_storage(random_floats(size_t(N * s.qkv_width()) + skip, seed, -2, 2), kType);
  Tensor out(FVec(size_t(N) * s.H * D), kType);
  // A view of qkv_storage from element `skip` on.
  Tensor qkv(FVec(size_t(N * s.qkv_width())), kType);
  if (misaligned) {
    T* base = static_cast<T*>(qkv_storage.data()) + skip;
    const FVec all = qkv_storage.values();
    qkv = Tensor(FVec(all.begin() + long(skip), all.end()), kType);
    std::memcpy(base, qkv.data(), size_t(N * s.qkv_width()) * sizeof(T));
  } else {
    qkv = qkv_storage;
  }
  const T* qkv_ptr = misaligned ? static_cast<T*>(qkv_storage.data()) + skip : static_cast<T*>(qkv.data());
  FVec lse(size_t(s.B) * s.H * s.T, std::nanf(""));
  out.poison();
  const Dims d = dims_of(s);
  const bool vec = rows_aligned<T>(qkv_ptr, d.W);
  CHECK(vec == !misaligned);
  emu::launch(dim3(attention_tiles<T, D>(s), s.H, s.B), dim3(C::kThreads), C::kFwdBytes,
              attention_forward_kernel<T, D>, static_cast<T*>(out.data()), Ref{lse.data(), 0}, qkv_ptr, d, vec);
  const FVec q_vals = qkv.values();
  FVec want_out(out.values().size()), want_lse(lse.size());
  cpu_ops().attention_forward(f32(want_out.data()), f32(want_lse.data()), f32(q_vals.data()), s);
  CHECK(rel_err(out.values(), want_out) < tolerance(kType));
  CHECK(rel_err(lse, want_lse) < 1e-5);

  Tensor dout(random_floats(size_t(N) * s.H * D, seed + 1), kType);
  Tensor dqkv(FVec(size_t(N * s.qkv_width())), kType);
  dqkv.poison();
  FVec dv_rows(size_t(N) * s.H, std::nanf(""));
  emu::launch(dim3(grid_for(N * s.H * 32, 256, int64_t(1) << 30)), dim3(256), 0, attention_dot_kernel<T>,
              dv_rows.data(), static_cast<const T*>(dout.data()), static_cast<const T*>(out.data()), int(N), s.T, s.H,
              D);
  const bool vec_dout = rows_aligned<T>(dout.data(), d.HD);
  emu::launch(dim3(attention_tiles<T, D>(s), s.Hkv, s.B), dim3(C::kThreads), C::kDkvBytes,
              attention_dkdv_kernel<T, D>, static_cast<T*>(dqkv.data()), static_cast<const T*>(dout.data()), qkv_ptr,
              Ref{lse.data(), 0}, static_cast<const float*>(dv_rows.data()), d, vec, vec_dout);
  emu::launch(dim3(attention_tiles<T, D>(s), s.H, s.B), dim3(C::kThreads), C::kDqBytes, attention_dq_kernel<T, D>,
              static_cast<T*>(dqkv.data()), static_cast<const T*>(dout.data()), qkv_ptr, Ref{lse.data(), 0},
              static_cast<const float*>(dv_rows.data()), d, vec, vec_dout);
  const FVec o_vals = out.values(), g_vals = dout.values();
  FVec want_dqkv(size_t(N * s.qkv_width()));
  cpu_ops().attention_backward(f32(want_dqkv.data()), f32(g_vals.data()), f32(q_vals.data()), f32(o_vals.data()),
                               f32(lse.data()), s);
  CHECK(rel_err(dqkv.values(), want_dqkv) < tolerance(kType));
}

}  // namespace

TEST_CASE("emulated attention kernels match the CPU: fp32 path") {
  attention_case<float, 32>({1, 70, 2, 1, 32}, 1);
  attention_case<float, 16>({2, 33, 2, 2, 16}, 2);
  attention_case<float, 64>({1, 65, 4, 2, 64}, 3);
  attention_case<float, 128>({1, 40, 2, 1, 128}, 4);
  attention_case<float, 64>({2, 1, 2, 1, 64}, 5);
  attention_case<float, 32>({1, 45, 2, 1, 32}, 10, true);
}

TEST_CASE("emulated attention kernels match the CPU: bf16 WMMA path") {
  attention_case<bf16, 32>({1, 70, 2, 1, 32}, 6);
  attention_case<bf16, 16>({2, 33, 2, 2, 16}, 7);
  attention_case<bf16, 64>({1, 130, 4, 2, 64}, 8);
  attention_case<bf16, 128>({1, 40, 2, 1, 128}, 9);
  attention_case<bf16, 32>({1, 45, 2, 1, 32}, 11, true);
}

TEST_CASE("emulated rmsnorm kernels match the CPU (vector and scalar rows)") {
  using namespace fm::kernels::cuda;
  for (DType t : {DType::F32, DType::BF16}) {
    for (int C : {64, 100}) {
      INFO(dtype_name(t) << " C=" << C);
      const int N = 19;
      Tensor x(random_floats(size_t(N) * C, 11, -2, 2), t), w(random_floats(size_t(C), 12, 0.5f, 1.5f), t);
      Tensor out(FVec(size_t(N) * C), t);
      out.poison();
      FVec rstd(size_t(N), std::nanf(""));
      const unsigned blocks = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
      const bool vec = C % 8 == 0;  // host vectors are 16-byte aligned
      if (vec)
        emu::launch(dim3(blocks), dim3(kRowThreads), 0, rmsnorm_forward_kernel<8>, out.ref(), Ref{rstd.data(), 0},
                    x.ref(), w.ref(), N, C, 1e-5f);
      else
        emu::launch(dim3(blocks), dim3(kRowThreads), 0, rmsnorm_forward_kernel<1>, out.ref(), Ref{rstd.data(), 0},
                    x.ref(), w.ref(), N, C, 1e-5f);
      const FVec xv = x.values(), wv = w.values();
      FVec want(size_t(N) * C), want_rstd(static_cast<size_t>(N));
      cpu_ops().rmsnorm_forward(f32(want.data()), f32(want_rstd.data()), f32(xv.data()), f32(wv.data()), N, C, 1e-5f);
      CHECK(rel_err(out.values(), want) < tolerance(t));
      CHECK(rel_err(rstd, want_rstd) < 1e-5);

      Tensor g(random_floats(size_t(N) * C, 13), t), dx(FVec(size_t(N) * C), t);
      dx.poison();
      if (vec)
        emu::launch(dim3(blocks), dim3(kRowThreads), 0, rmsnorm_backward_dx_kernel<8>, dx.ref(), g.ref(), x.ref(),
                    w.ref(), Ref{rstd.data(), 0}, N, C, false);
      else
        emu::launch(dim3(blocks), dim3(kRowThreads), 0, rmsnorm_backward_dx_kernel<1>, dx.ref(), g.ref(), x.ref(),
                    w.ref(), Ref{rstd.data(), 0}, N, C, false);
      const int rows_per_chunk = 4, chunks = (N + rows_per_chunk - 1) / rows_per_chunk;  // several chunks
      FVec partial(size_t(chunks) * C, std::nanf(""));
      FVec dw = random_floats(size_t(C), 14);
      FVec want_dw = dw;
      emu::launch(dim3((C + 255) / 256, chunks), dim3(256), 0, rmsnorm_dw_partial_kernel, partial.data(), g.ref(),
                  x.ref(), Ref{rstd.data(), 0}, N, C, rows_per_chunk);
      emu::launch(dim3((C + 255) / 256), dim3(256), 0, rmsnorm_dw_finish_kernel, Ref{dw.data(), 0},
                  static_cast<const float*>(partial.data()), chunks, C);
      const FVec gv = g.values();
      FVec want_dx(size_t(N) * C);
      cpu_ops().rmsnorm_backward(f32(want_dx.data()), f32(want_dw.data()), f32(gv.data()), f32(xv.data()),
                                 f32(wv.data()), f32(rstd.data()), N, C, false);
      CHECK(rel_err(dx.values(), want_dx) < tolerance(t));
      CHECK(rel_err(dw, want_dw) < 1e-5);
    }
  }
}

TEST_CASE("emulated cross-entropy kernels match the CPU: ignored rows, in place") {
  using namespace fm::kernels::cuda;
  for (DType t : {DType::F32, DType::BF16}) {
    for (int V : {256, 77}) {
      INFO(dtype_name(t) << " V=" << V);
      const int N = 9;
      Tensor logits(random_floats(size_t(N) * V, 15, -6, 6), t);
      const FVec lv = logits.values();
      std::vector<int32_t> targets = testing::random_ints(size_t(N), 16, 0, V - 1);
      targets[2] = -100;
      FVec losses(size_t(N), std::nanf(""));
      std::vector<double> row_loss(size_t(N), std::nan(""));
      int bad = 0;
      CrossEntropyResult result{};
      const float scale = 0.125f;
      if (V % 8 == 0)
        emu::launch(dim3(N), dim3(kCrossEntropyThreads), 0, cross_entropy_kernel<8>, Ref{losses.data(), 0},
                    logits.ref(), logits.ref(), static_cast<const int32_t*>(targets.data()), V, scale, row_loss.data(),
                    &bad);
      else
        emu::launch(dim3(N), dim3(kCrossEntropyThreads), 0, cross_entropy_kernel<1>, Ref{losses.data(), 0},
                    logits.ref(), logits.ref(), static_cast<const int32_t*>(targets.data()), V, scale, row_loss.data(),
                    &bad);
      emu::launch(dim3(1), dim3(1024), 0, sum_rows_kernel, static_cast<const double*>(row_loss.data()), N,
                  static_cast<const int*>(&bad), &result);
      FVec want_d(lv.size()), want_losses(static_cast<size_t>(N));
      const double want = cpu_ops().cross_entropy(f32(want_losses.data()), f32(want_d.data()), f32(lv.data()),
                                                  i32(targets.data()), N, V, scale);
      CHECK(result.bad_targets == 0);
      if (t == DType::F32 && V == 77) {  // a target outside [0, V) is counted, its row gives 0
        std::vector<int32_t> bad_targets = targets;
        bad_targets[4] = V;
        int bad_count = 0;
        std::vector<double> rows(static_cast<size_t>(N), std::nan(""));
        emu::launch(dim3(N), dim3(kCrossEntropyThreads), 0, cross_entropy_kernel<1>, Ref{}, Ref{}, logits.ref(),
                    static_cast<const int32_t*>(bad_targets.data()), V, scale, rows.data(), &bad_count);
        CHECK(bad_count == 1);
        CHECK(rows[4] == 0.0);
      }
      CHECK(std::abs(result.loss_sum - want) / want < 1e-6);
      CHECK(rel_err(losses, want_losses) < 1e-5);
      CHECK(rel_err(logits.values(), want_d) < tolerance(t));
    }
  }
}

TEST_CASE("emulated elementwise kernels match the CPU: add, sum of squares, SwiGLU, RoPE, embedding") {
  using namespace fm::kernels::cuda;
  const int64_t n = 1003;
  FVec a = random_floats(size_t(n), 17), b = random_floats(size_t(n), 18), out(size_t(n), std::nanf(""));
  for (bool vec : {true, false}) {
    std::fill(out.begin(), out.end(), std::nanf(""));
    emu::launch(dim3(grid_for(vec ? (n + 7) / 8 : n, kElementwiseThreads)), dim3(kElementwiseThreads), 0,
                map_kernel<AddOp>, Ref{out.data(), 0}, Ref{a.data(), 0}, Ref{b.data(), 0}, n, AddOp{}, vec);
    FVec want(static_cast<size_t>(n));
    cpu_ops().add(f32(want.data()), f32(a.data()), f32(b.data()), n);
    CHECK(rel_err(out, want) == 0.0);
  }
  {  // conversion to bf16: the CPU backend's bits
    std::vector<uint16_t> bits(static_cast<size_t>(n), 0xffff);
    emu::launch(dim3(grid_for((n + 7) / 8, kElementwiseThreads)), dim3(kElementwiseThreads), 0, map_kernel<CopyOp>,
                Ref{bits.data(), kBF16}, Ref{a.data(), 0}, Ref{}, n, CopyOp{}, true);
    bool same = true;
    for (int64_t i = 0; i < n; ++i) same = same && bits[size_t(i)] == cpu::float_to_bf16(a[size_t(i)]);
    CHECK(same);
    FVec scaled = a, want = a;
    emu::launch(dim3(grid_for(n, kElementwiseThreads)), dim3(kElementwiseThreads), 0, map_kernel<ScaleOp>,
                Ref{scaled.data(), 0}, Ref{scaled.data(), 0}, Ref{}, n, ScaleOp{0.37f}, false);
    cpu_ops().scale(f32(want.data()), 0.37f, n);
    CHECK(rel_err(scaled, want) == 0.0);
  }
  {
    std::vector<double> partial(4, std::nan("")), total(1, std::nan(""));
    emu::launch(dim3(4), dim3(kSumThreads), 0, sum_squares_partial, Ref{a.data(), 0}, n, partial.data(), true);
    emu::launch(dim3(1), dim3(kSumThreads), 0, sum_partials, static_cast<const double*>(partial.data()), 4,
                total.data());
    const double want = cpu_ops().sum_squares(f32(a.data()), n);
    CHECK(std::abs(total[0] - want) / want < 1e-12);
  }
  for (int F : {24, 13}) {
    const int N = 5;
    const bool vec = F % 8 == 0;
    FVec gu = random_floats(size_t(N) * 2 * F, 19, -4, 4), y(size_t(N) * F, std::nanf(""));
    const unsigned grid = grid_for(int64_t(N) * (vec ? F / 8 : F), kElementwiseThreads);
    emu::launch(dim3(grid), dim3(kElementwiseThreads), 0, swiglu_forward_kernel, Ref{y.data(), 0}, Ref{gu.data(), 0},
                N, F, vec);
    FVec want(y.size());
    cpu_ops().swiglu_forward(f32(want.data()), f32(gu.data()), N, F);
    CHECK(rel_err(y, want) < 1e-5);
    FVec dy = random_floats(y.size(), 20), dgu(gu.size(), std::nanf("")), want_dgu(gu.size());
    emu::launch(dim3(grid), dim3(kElementwiseThreads), 0, swiglu_backward_kernel, Ref{dgu.data(), 0},
                Ref{dy.data(), 0}, Ref{gu.data(), 0}, N, F, vec);
    cpu_ops().swiglu_backward(f32(want_dgu.data()), f32(dy.data()), f32(gu.data()), N, F);
    CHECK(rel_err(dgu, want_dgu) < 1e-5);
  }
  {
    const AttentionShape s{2, 7, 4, 2, 16};
    FVec table(size_t(s.T) * s.D);
    rope_table(table.data(), s.T, s.D, 10000.0, {});
    FVec x = random_floats(size_t(s.B) * s.T * s.qkv_width(), 21), want = x;
    const int64_t items = int64_t(s.B) * s.T * (s.H + s.Hkv) * (s.D / 2);
    emu::launch(dim3(grid_for(items, kElementwiseThreads)), dim3(kElementwiseThreads), 0, rope_kernel,
                Ref{x.data(), 0}, Ref{table.data(), 0}, s.B * s.T, s.T, s.H + s.Hkv, s.D, s.qkv_width(), false);
    cpu_ops().rope_forward(f32(want.data()), f32(table.data()), s);
    CHECK(rel_err(x, want) < 1e-6);
  }
  {
    const int N = 20, C = 16, V = 9;
    const std::vector<int32_t> tokens = testing::random_ints(size_t(N), 22, 0, V - 1);
    FVec table = random_floats(size_t(V) * C, 23), emb(size_t(N) * C, std::nanf("")), want(emb.size());
    emu::launch(dim3(grid_for(int64_t(N) * C / 8, kElementwiseThreads)), dim3(kElementwiseThreads), 0,
                embedding_forward_kernel, Ref{emb.data(), 0}, tokens.data(), Ref{table.data(), 0}, N, C, true);
    cpu_ops().embedding_forward(f32(want.data()), i32(tokens.data()), f32(table.data()), N, C);
    CHECK(rel_err(emb, want) == 0.0);

    // Backward: the sort CUB does on the GPU, done here with a stable sort of (token, position).
    std::vector<int32_t> positions(static_cast<size_t>(N), -1);
    emu::launch(dim3(grid_for(N, 256, 1024)), dim3(256), 0, iota_kernel, positions.data(), N);
    std::stable_sort(positions.begin(), positions.end(), [&](int32_t x, int32_t y) { return tokens[x] < tokens[y]; });
    std::vector<int32_t> keys(static_cast<size_t>(N));
    for (int i = 0; i < N; ++i) keys[size_t(i)] = tokens[size_t(positions[size_t(i)])];
    const FVec grad = random_floats(emb.size(), 24);
    for (auto [r0, r1] : {std::pair{0, V}, std::pair{2, 6}}) {
      FVec rows = random_floats(size_t(r1 - r0) * C, 25), want_rows = rows;
      emu::launch(dim3(N, (C + kEmbeddingThreads - 1) / kEmbeddingThreads), dim3(kEmbeddingThreads), 0,
                  embedding_backward_kernel, Ref{rows.data(), 0}, Ref{const_cast<float*>(grad.data()), 0},
                  static_cast<const int32_t*>(keys.data()), static_cast<const int32_t*>(positions.data()), N, C, r0, r1);
      cpu_ops().embedding_backward_rows(f32(want_rows.data()), f32(grad.data()), i32(tokens.data()), N, C, r0, r1, V);
      CHECK(rel_err(rows, want_rows) < 1e-6);
    }
  }
}

TEST_CASE("emulated adam kernel matches the CPU bit for bit, with f32 and bf16 parameter copies") {
  using namespace fm::kernels::cuda;
  const int64_t n = 2001;
  for (bool adam_w : {true, false}) {
    for (DType out_type : {DType::F32, DType::BF16}) {
      INFO("adam_w " << adam_w << " param_out " << dtype_name(out_type));
      FVec master = random_floats(size_t(n), 26), m = random_floats(size_t(n), 27, -0.1f, 0.1f);
      FVec v = random_floats(size_t(n), 28, 0.0f, 0.01f);
      const FVec grad = random_floats(size_t(n), 29);
      FVec cpu_master = master, cpu_m = m, cpu_v = v, cpu_param(static_cast<size_t>(n));
      Tensor param(FVec(static_cast<size_t>(n)), out_type);
      param.poison();
      AdamStep s;
      s.lr = 3e-4f, s.beta1 = 0.9f, s.beta2 = 0.95f, s.eps = 1e-8f, s.weight_decay = 0.1f;
      s.adam_w_mode = adam_w, s.step = 7;
      emu::launch(dim3(grid_for(n, kElementwiseThreads)), dim3(kElementwiseThreads), 0, adam_kernel, master.data(),
                  Ref{const_cast<float*>(grad.data()), 0}, m.data(), v.data(), param.ref(), n, adam_coefficients(s));
      cpu_ops().adam_update(f32(cpu_master.data()), f32(grad.data()), f32(cpu_m.data()), f32(cpu_v.data()),
                            f32(cpu_param.data()), n, s);
      CHECK(std::memcmp(master.data(), cpu_master.data(), master.size() * 4) == 0);
      CHECK(std::memcmp(m.data(), cpu_m.data(), m.size() * 4) == 0);
      CHECK(std::memcmp(v.data(), cpu_v.data(), v.size() * 4) == 0);
      CHECK(rel_err(param.values(), Tensor(cpu_param, out_type).values()) == 0.0);
    }
  }
}
