// Every CUDA op against its CPU twin on fresh random inputs, in fp32 (relative error < 1e-5) and
// bf16 (< 1e-2; the CPU runs in fp32 on the bf16-rounded inputs). Outputs are poisoned with NaN
// before each run, so an element an op forgets to write fails the comparison; outputs that
// accumulate start from random values instead. Also: bit-equal reruns of the ops that promise
// determinism, conversions bit-exact with the CPU's, and Adam bit-exact in fp32.
// Without a GPU the program prints "SKIP: no GPU (<reason>)" and exits 77 (meson: skipped).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/cuda_probe.h"
#include "runtime/base/error.h"
#include "tests/cuda/gpu_test.h"

using namespace fm::kernels;
using namespace fm::kernels::gputest;

namespace {

const DType kTypes[] = {DType::F32, DType::BF16};

bool same_bits(const FVec& a, const FVec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

enum class Gemm { NT, NN, TN };

// One GEMM form through both backends. out_type may be F32 while the inputs are bf16.
void check_gemm(Gemm form, int M, int N, int K, DType in_type, DType out_type, bool accumulate, uint32_t seed) {
  INFO("gemm form " << int(form) << " M=" << M << " N=" << N << " K=" << K << " in " << dtype_name(in_type)
                    << " out " << dtype_name(out_type) << " accumulate " << accumulate);
  const FVec a = rounded(random_floats(size_t(M) * K, seed), in_type);
  const FVec b = rounded(random_floats(size_t(N) * K, seed + 1), in_type);
  FVec want = accumulate ? rounded(random_floats(size_t(M) * N, seed + 2), out_type) : FVec(size_t(M) * N, 0.0f);
  auto da = upload(a, in_type), db = upload(b, in_type);
  auto dout = accumulate ? upload(want, out_type) : poisoned(int64_t(M) * N, out_type);
  switch (form) {
    case Gemm::NT:
      g_cpu->matmul_nt(f32(want.data()), f32(a.data()), f32(b.data()), M, N, K, accumulate);
      g_gpu->matmul_nt(dout->v(), da->v(), db->v(), M, N, K, accumulate);
      break;
    case Gemm::NN:
      g_cpu->matmul_nn(f32(want.data()), f32(a.data()), f32(b.data()), M, N, K, accumulate);
      g_gpu->matmul_nn(dout->v(), da->v(), db->v(), M, N, K, accumulate);
      break;
    case Gemm::TN:
      g_cpu->matmul_tn(f32(want.data()), f32(a.data()), f32(b.data()), M, N, K, accumulate);
      g_gpu->matmul_tn(dout->v(), da->v(), db->v(), M, N, K, accumulate);
      break;
  }
  CHECK(rel_err(dout->get(), want) < tolerance(in_type == DType::F32 && out_type == DType::F32 ? DType::F32 : DType::BF16));
}

}  // namespace

TEST_CASE("copy converts f32 <-> bf16 between host and device like the CPU backend, bit for bit") {
  const size_t n = 1001;
  FVec x = random_floats(n, 1, -1e3f, 1e3f);
  x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-40f, x[3] = 3.0e38f;
  std::vector<uint16_t> want(n);
  for (size_t i = 0; i < n; ++i) want[i] = cpu::float_to_bf16(x[i]);

  Dev bf(int64_t(n), DType::BF16);
  g_gpu->copy(bf.v(), f32(x.data()), int64_t(n));  // host f32 -> device bf16
  std::vector<uint16_t> got(n);
  g_gpu->copy(View{got.data(), DType::BF16}, bf.v(), int64_t(n));  // device bf16 -> host bf16
  CHECK(std::memcmp(got.data(), want.data(), n * 2) == 0);

  auto f = upload(x, DType::F32);
  Dev bf2(int64_t(n), DType::BF16);
  g_gpu->copy(bf2.v(), f->v(), int64_t(n));  // device f32 -> device bf16
  g_gpu->copy(View{got.data(), DType::BF16}, bf2.v(), int64_t(n));
  CHECK(std::memcmp(got.data(), want.data(), n * 2) == 0);

  FVec back(n);
  g_gpu->copy(f32(back.data()), bf2.v(), int64_t(n));  // device bf16 -> host f32
  for (size_t i = 0; i < n; ++i) CHECK(back[i] == cpu::bf16_to_float(want[i]));

  std::vector<int32_t> ids = random_ints(77, 2, -5, 1 << 20), ids_back(77);
  auto di = upload_ints(ids);
  g_gpu->copy(i32(ids_back.data()), di->v(), 77);
  CHECK(ids == ids_back);
}

TEST_CASE("matmul_nt/nn/tn match the CPU, fresh and accumulating, with odd shapes") {
  uint32_t seed = 10;
  for (DType t : kTypes) {
    for (Gemm form : {Gemm::NT, Gemm::NN, Gemm::TN}) {
      for (bool acc : {false, true}) {
        check_gemm(form, 37, 53, 29, t, t, acc, seed += 3);
        check_gemm(form, 64, 128, 96, t, t, acc, seed += 3);
      }
    }
  }
  // bf16 x bf16 -> fp32: how weight gradients accumulate in fp32.
  check_gemm(Gemm::TN, 48, 40, 200, DType::BF16, DType::F32, true, 99);
  check_gemm(Gemm::NT, 33, 17, 64, DType::BF16, DType::F32, false, 98);
}

TEST_CASE("matmul_tn_rows computes a row range of matmul_tn") {
  const int M = 37, N = 24, K = 50, r0 = 5, r1 = 22;
  for (DType t : kTypes) {
    INFO(dtype_name(t));
    const FVec a = rounded(random_floats(size_t(K) * M, 3), t), b = rounded(random_floats(size_t(K) * N, 4), t);
    FVec want = rounded(random_floats(size_t(r1 - r0) * N, 5), t);
    auto da = upload(a, t), db = upload(b, t), dout = upload(want, t);
    g_cpu->matmul_tn_rows(f32(want.data()), f32(a.data()), f32(b.data()), M, N, K, r0, r1, true);
    g_gpu->matmul_tn_rows(dout->v(), da->v(), db->v(), M, N, K, r0, r1, true);
    CHECK(rel_err(dout->get(), want) < tolerance(t));
  }
}

TEST_CASE("embedding forward, backward and its row ranges match the CPU; backward is deterministic") {
  const int N = 300, C = 72, V = 50;
  const std::vector<int32_t> tokens = random_ints(N, 6, 0, V - 1);  // many repeats per row
  auto dtok = upload_ints(tokens);
  for (DType t : kTypes) {
    INFO(dtype_name(t));
    const FVec table = rounded(random_floats(size_t(V) * C, 7), t);
    auto dtable = upload(table, t);
    FVec want(size_t(N) * C);
    g_cpu->embedding_forward(f32(want.data()), i32(tokens.data()), f32(table.data()), N, C);
    auto dout = poisoned(int64_t(N) * C, t);
    g_gpu->embedding_forward(dout->v(), dtok->v(), dtable->v(), N, C);
    CHECK(rel_err(dout->get(), want) == 0.0);

    const FVec grad = rounded(random_floats(size_t(N) * C, 8), t);
    auto dgrad = upload(grad, t);
    // Gradients accumulate in fp32 (DType F32 table gradient), as the engine keeps them.
    FVec gtable = random_floats(size_t(V) * C, 9);
    auto dg1 = upload(gtable, DType::F32), dg2 = upload(gtable, DType::F32);
    g_cpu->embedding_backward(f32(gtable.data()), f32(grad.data()), i32(tokens.data()), N, C, V);
    g_gpu->embedding_backward(dg1->v(), dgrad->v(), dtok->v(), N, C, V);
    g_gpu->embedding_backward(dg2->v(), dgrad->v(), dtok->v(), N, C, V);
    const FVec got1 = dg1->get();
    CHECK(rel_err(got1, gtable) < 1e-5);
    CHECK(same_bits(got1, dg2->get()));

    const int r0 = 10, r1 = 31;
    FVec rows = random_floats(size_t(r1 - r0) * C, 10);
    auto drows = upload(rows, DType::F32);
    g_cpu->embedding_backward_rows(f32(rows.data()), f32(grad.data()), i32(tokens.data()), N, C, r0, r1, V);
    g_gpu->embedding_backward_rows(drows->v(), dgrad->v(), dtok->v(), N, C, r0, r1, V);
    CHECK(rel_err(drows->get(), rows) < 1e-5);
  }
}

TEST_CASE("rmsnorm forward and backward match the CPU (vector and scalar row widths)") {
  for (DType t : kTypes) {
    for (int C : {64, 100}) {
      INFO(dtype_name(t) << " C=" << C);
      const int N = 45;
      const FVec x = rounded(random_floats(size_t(N) * C, 11, -2, 2), t);
      const FVec w = rounded(random_floats(size_t(C), 12, 0.5f, 1.5f), t);
      FVec out(size_t(N) * C), rstd(static_cast<size_t>(N));
      g_cpu->rmsnorm_forward(f32(out.data()), f32(rstd.data()), f32(x.data()), f32(w.data()), N, C, 1e-5f);
      auto dx_in = upload(x, t), dw = upload(w, t);
      auto dout = poisoned(int64_t(N) * C, t), drstd = poisoned(N, DType::F32);
      g_gpu->rmsnorm_forward(dout->v(), drstd->v(), dx_in->v(), dw->v(), N, C, 1e-5f);
      CHECK(rel_err(dout->get(), out) < tolerance(t));
      CHECK(rel_err(drstd->get(), rstd) < 1e-5);

      const FVec g = rounded(random_floats(size_t(N) * C, 13), t);
      auto dg = upload(g, t);
      for (bool acc : {false, true}) {
        INFO("accumulate_dx " << acc);
        FVec dx = acc ? rounded(random_floats(size_t(N) * C, 14), t) : FVec(size_t(N) * C);
        FVec dwv = random_floats(size_t(C), 15);
        auto ddx = acc ? upload(dx, t) : poisoned(int64_t(N) * C, t);
        auto ddw = upload(dwv, DType::F32);
        g_cpu->rmsnorm_backward(f32(dx.data()), f32(dwv.data()), f32(g.data()), f32(x.data()), f32(w.data()),
                                f32(rstd.data()), N, C, acc);
        g_gpu->rmsnorm_backward(ddx->v(), ddw->v(), dg->v(), dx_in->v(), dw->v(), drstd->v(), N, C, acc);
        CHECK(rel_err(ddx->get(), dx) < tolerance(t));
        CHECK(rel_err(ddw->get(), dwv) < tolerance(t));
      }
    }
  }
}

TEST_CASE("rope forward and backward match the CPU") {
  const AttentionShape s{2, 19, 4, 2, 32};
  const int64_t n = int64_t(s.B) * s.T * s.qkv_width();
  FVec table(size_t(s.T) * s.D);
  rope_table(table.data(), s.T, s.D, 10000.0, {});
  auto dtable = upload(table, DType::F32);
  for (DType t : kTypes) {
    INFO(dtype_name(t));
    for (bool inverse : {false, true}) {
      FVec x = rounded(random_floats(size_t(n), 16), t);
      auto dx = upload(x, t);
      if (inverse) {
        g_cpu->rope_backward(f32(x.data()), f32(table.data()), s);
        g_gpu->rope_backward(dx->v(), dtable->v(), s);
      } else {
        g_cpu->rope_forward(f32(x.data()), f32(table.data()), s);
        g_gpu->rope_forward(dx->v(), dtable->v(), s);
      }
      CHECK(rel_err(dx->get(), x) < tolerance(t));
    }
  }
}

TEST_CASE("attention forward and backward match the CPU; backward reruns are bit-equal") {
  // (B, T, H, Hkv, D): ragged last tiles (T not a multiple of 32 or 64), grouped and plain heads,
  // every compiled head dimension, a one-token sequence.
  const AttentionShape shapes[] = {{2, 100, 4, 2, 64}, {1, 64, 2, 2, 128}, {1, 130, 8, 1, 32},
                                   {2, 37, 4, 4, 16},  {1, 200, 4, 2, 128}, {3, 1, 2, 1, 64}};
  uint32_t seed = 100;
  for (const AttentionShape& s : shapes) {
    for (DType t : kTypes) {
      INFO("B=" << s.B << " T=" << s.T << " H=" << s.H << " Hkv=" << s.Hkv << " D=" << s.D << " " << dtype_name(t));
      const int64_t N = int64_t(s.B) * s.T;
      const FVec qkv = rounded(random_floats(size_t(N * s.qkv_width()), seed++, -2, 2), t);
      FVec out(size_t(N) * s.H * s.D), lse(size_t(s.B) * s.H * s.T);
      g_cpu->attention_forward(f32(out.data()), f32(lse.data()), f32(qkv.data()), s);
      auto dqkv_in = upload(qkv, t);
      auto dout = poisoned(N * s.H * s.D, t), dlse = poisoned(int64_t(lse.size()), DType::F32);
      g_gpu->attention_forward(dout->v(), dlse->v(), dqkv_in->v(), s);
      const FVec gpu_out = dout->get();
      CHECK(rel_err(gpu_out, out) < tolerance(t));
      CHECK(rel_err(dlse->get(), lse) < tolerance(t));

      // Backward from the GPU's own forward output (the CPU gets the same values).
      const FVec o = rounded(gpu_out, t);
      const FVec g = rounded(random_floats(size_t(N) * s.H * s.D, seed++), t);
      const FVec gpu_lse = dlse->get();
      FVec dqkv(size_t(N * s.qkv_width()));
      g_cpu->attention_backward(f32(dqkv.data()), f32(g.data()), f32(qkv.data()), f32(o.data()), f32(gpu_lse.data()),
                                s);
      auto dg = upload(g, t);
      auto d1 = poisoned(N * s.qkv_width(), t), d2 = poisoned(N * s.qkv_width(), t);
      g_gpu->attention_backward(d1->v(), dg->v(), dqkv_in->v(), dout->v(), dlse->v(), s);
      g_gpu->attention_backward(d2->v(), dg->v(), dqkv_in->v(), dout->v(), dlse->v(), s);
      const FVec got = d1->get();
      CHECK(rel_err(got, dqkv) < tolerance(t));
      CHECK(same_bits(got, d2->get()));
    }
  }
}

TEST_CASE("swiglu forward and backward match the CPU") {
  for (DType t : kTypes) {
    for (int F : {96, 45}) {
      INFO(dtype_name(t) << " F=" << F);
      const int N = 33;
      const FVec gu = rounded(random_floats(size_t(N) * 2 * F, 17, -4, 4), t);
      FVec out(size_t(N) * F);
      g_cpu->swiglu_forward(f32(out.data()), f32(gu.data()), N, F);
      auto dgu = upload(gu, t);
      auto dout = poisoned(int64_t(N) * F, t);
      g_gpu->swiglu_forward(dout->v(), dgu->v(), N, F);
      CHECK(rel_err(dout->get(), out) < tolerance(t));

      const FVec dy = rounded(random_floats(size_t(N) * F, 18), t);
      FVec dgrad(gu.size());
      g_cpu->swiglu_backward(f32(dgrad.data()), f32(dy.data()), f32(gu.data()), N, F);
      auto ddy = upload(dy, t);
      auto ddg = poisoned(int64_t(gu.size()), t);
      g_gpu->swiglu_backward(ddg->v(), ddy->v(), dgu->v(), N, F);
      CHECK(rel_err(ddg->get(), dgrad) < tolerance(t));
    }
  }
}

TEST_CASE("cross_entropy matches the CPU: ignored rows, in place, without losses or gradients") {
  for (DType t : kTypes) {
    for (int V : {1000, 333}) {
      INFO(dtype_name(t) << " V=" << V);
      const int N = 50;
      const float scale = 1.0f / 40;
      const FVec logits = rounded(random_floats(size_t(N) * V, 19, -6, 6), t);
      std::vector<int32_t> targets = random_ints(N, 20, 0, V - 1);
      targets[0] = targets[7] = targets[49] = -100;
      auto dtargets = upload_ints(targets);

      FVec dlogits(logits.size()), losses(static_cast<size_t>(N));
      const double want = g_cpu->cross_entropy(f32(losses.data()), f32(dlogits.data()), f32(logits.data()),
                                               i32(targets.data()), N, V, scale);
      auto dl = upload(logits, t);  // in place: dlogits aliases logits
      auto dlosses = poisoned(N, DType::F32);
      const double got = g_gpu->cross_entropy(dlosses->v(), dl->v(), dl->v(), dtargets->v(), N, V, scale);
      CHECK(std::abs(got - want) / std::abs(want) < 1e-5);
      CHECK(rel_err(dl->get(), dlogits) < tolerance(t));
      CHECK(rel_err(dlosses->get(), losses) < 1e-5);

      auto dl2 = upload(logits, t);
      auto dgrad = poisoned(int64_t(logits.size()), t);
      const double got2 = g_gpu->cross_entropy(View{}, dgrad->v(), dl2->v(), dtargets->v(), N, V, scale);
      CHECK(got2 == got);  // deterministic, and the same sum whatever is written
      CHECK(rel_err(dgrad->get(), dlogits) < tolerance(t));
      CHECK(rel_err(dl2->get(), logits) == 0.0);  // logits untouched when dlogits is elsewhere
      const double got3 = g_gpu->cross_entropy(View{}, View{}, dl2->v(), dtargets->v(), N, V, scale);
      CHECK(got3 == got);
    }
  }
}

TEST_CASE("add, accumulate, scale and sum_squares match the CPU") {
  const int64_t n = 100003;  // not a multiple of 8: the scalar tail runs too
  for (DType t : kTypes) {
    INFO(dtype_name(t));
    const FVec a = rounded(random_floats(size_t(n), 21), t), b = rounded(random_floats(size_t(n), 22), t);
    FVec want(static_cast<size_t>(n));
    g_cpu->add(f32(want.data()), f32(a.data()), f32(b.data()), n);
    auto da = upload(a, t), db = upload(b, t);
    auto dout = poisoned(n, t);
    g_gpu->add(dout->v(), da->v(), db->v(), n);
    CHECK(rel_err(dout->get(), want) < tolerance(t));

    FVec acc = a;
    g_cpu->accumulate(f32(acc.data()), f32(b.data()), n);
    g_gpu->accumulate(da->v(), db->v(), n);
    CHECK(rel_err(da->get(), acc) < tolerance(t));

    FVec sc = b;
    g_cpu->scale(f32(sc.data()), 0.37f, n);
    g_gpu->scale(db->v(), 0.37f, n);
    CHECK(rel_err(db->get(), sc) < tolerance(t));

    const FVec x = rounded(random_floats(size_t(n), 23), t);
    auto dx = upload(x, t);
    const double ss_cpu = g_cpu->sum_squares(f32(x.data()), n);
    const double ss_gpu = g_gpu->sum_squares(dx->v(), n);
    CHECK(std::abs(ss_gpu - ss_cpu) / ss_cpu < 1e-6);
    CHECK(g_gpu->sum_squares(dx->v(), n) == ss_gpu);
  }
}

TEST_CASE("adam_update matches the CPU bit for bit in fp32, with f32 and bf16 parameter copies") {
  const int64_t n = 10007;
  for (bool adam_w : {true, false}) {
    for (DType out_type : {DType::F32, DType::BF16}) {
      INFO("adam_w " << adam_w << " param_out " << dtype_name(out_type));
      FVec master = random_floats(size_t(n), 24), m = random_floats(size_t(n), 25, -0.1f, 0.1f);
      FVec v = random_floats(size_t(n), 26, 0.0f, 0.01f);
      const FVec grad = random_floats(size_t(n), 27);
      auto dmaster = upload(master, DType::F32), dm = upload(m, DType::F32), dv = upload(v, DType::F32);
      auto dgrad = upload(grad, DType::F32);
      auto dparam = poisoned(n, out_type);
      AdamStep s;
      s.lr = 3e-4f, s.beta1 = 0.9f, s.beta2 = 0.95f, s.eps = 1e-8f, s.weight_decay = 0.1f;
      s.adam_w_mode = adam_w, s.step = 3;
      FVec param(static_cast<size_t>(n));
      g_cpu->adam_update(f32(master.data()), f32(grad.data()), f32(m.data()), f32(v.data()), f32(param.data()), n, s);
      g_gpu->adam_update(dmaster->v(), dgrad->v(), dm->v(), dv->v(), dparam->v(), n, s);
      CHECK(same_bits(dmaster->get(), master));
      CHECK(same_bits(dm->get(), m));
      CHECK(same_bits(dv->get(), v));
      CHECK(rel_err(dparam->get(), rounded(param, out_type)) == 0.0);
    }
  }
}

TEST_CASE("select_cuda_device: local rank within the visible GPUs") {
  CHECK(cuda::select_cuda_device(-1) == 0);
  CHECK(cuda::select_cuda_device(0) == 0);
  const int count = cuda::link_report().device_count;
  CHECK(cuda::select_cuda_device(count + 1, true) == (count + 1) % count);
  CHECK_THROWS_AS(cuda::select_cuda_device(count), fm::InputError);
}

int main(int argc, char** argv) {
  std::string why;
  if (!cuda::device_available(&why)) {
    std::printf("SKIP: no GPU (%s)\n", why.c_str());
    return 77;
  }
  auto gpu = cuda::make_cuda_ops(0);
  auto cpu = make_cpu_ops();
  g_gpu = gpu.get();
  g_cpu = cpu.get();
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
