// Every forward of the CPU kernels (double instances) against the naive loops of naive.h.
#include <doctest/doctest.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vec_math.h"
#include "tests/kernels/naive.h"
#include "tests/kernels/test_util.h"

#include <bit>
#include <cstring>

namespace cpu = fm::kernels::cpu;
namespace naive = fm::kernels::naive;
using fm::kernels::AttentionShape;
using namespace fm::kernels::testing;

TEST_CASE("matmul_nt / nn / tn match the naive product, overwriting and accumulating") {
  // Shapes that are tiny (one BLAS call), cut into ragged parallel tiles, and small over a long K
  // (K split into chunks).
  struct Shape {
    int M, N, K;
  };
  for (const Shape sh : {Shape{3, 4, 5}, Shape{300, 520, 70}, Shape{257, 33, 129}, Shape{100, 90, 2500}}) {
    const auto [M, N, K] = sh;
    CAPTURE(M);
    CAPTURE(N);
    CAPTURE(K);
    for (bool acc : {false, true}) {
      const Vec init = random_vec(size_t(M) * N, 1);
      {
        const Vec a = random_vec(size_t(M) * K, 2), b = random_vec(size_t(N) * K, 3);
        Vec got = init, want = init;
        cpu::matmul_nt(got.data(), a.data(), b.data(), M, N, K, acc);
        naive::matmul(want, a, b, M, N, K, false, true, acc);
        CHECK(max_abs_diff(got, want) < 1e-11);
      }
      {
        const Vec a = random_vec(size_t(M) * K, 4), b = random_vec(size_t(K) * N, 5);
        Vec got = init, want = init;
        cpu::matmul_nn(got.data(), a.data(), b.data(), M, N, K, acc);
        naive::matmul(want, a, b, M, N, K, false, false, acc);
        CHECK(max_abs_diff(got, want) < 1e-11);
      }
      {
        const Vec a = random_vec(size_t(K) * M, 6), b = random_vec(size_t(K) * N, 7);
        Vec got = init, want = init;
        cpu::matmul_tn(got.data(), a.data(), b.data(), M, N, K, acc);
        naive::matmul(want, a, b, M, N, K, true, false, acc);
        CHECK(max_abs_diff(got, want) < 1e-11);
      }
    }
  }
}

TEST_CASE("rmsnorm forward matches the naive loop") {
  const int N = 37, C = 300;
  const Vec x = random_vec(size_t(N) * C, 10, -3, 3), w = random_vec(C, 11);
  Vec out(x.size()), rstd(N), want(x.size()), want_rstd(N);
  cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6);
  naive::rmsnorm_forward(want, want_rstd, x, w, N, C, 1e-6);
  CHECK(max_rel_diff(out, want) < 1e-13);
  CHECK(max_rel_diff(rstd, want_rstd) < 1e-13);
}

TEST_CASE("rope forward matches the naive rotation and leaves value heads alone") {
  const AttentionShape s{3, 7, 4, 2, 8};
  const Vec table = random_vec(size_t(s.T) * s.D, 12);
  const Vec x = random_vec(size_t(s.B) * s.T * s.qkv_width(), 13);
  Vec got = x, want = x;
  cpu::rope_forward(got.data(), table.data(), s);
  naive::rope_forward(want, table, s);
  CHECK(max_abs_diff(got, want) < 1e-14);
  for (size_t n = 0; n < size_t(s.B) * s.T; ++n)
    for (int c = (s.H + s.Hkv) * s.D; c < s.qkv_width(); ++c)
      CHECK(got[n * s.qkv_width() + c] == x[n * s.qkv_width() + c]);
}

TEST_CASE("attention forward matches full-matrix softmax attention") {
  struct Case {
    AttentionShape s;
    int block;
  };
  const Case cases[] = {
      {{2, 70, 4, 4, 8}, 0},   // default block 64: T = 64 + 6
      {{2, 70, 4, 2, 8}, 0},
      {{1, 130, 8, 2, 16}, 0},  // two full blocks and a ragged one
      {{2, 23, 4, 1, 6}, 8},
      {{1, 1, 2, 1, 4}, 0},    // one token
  };
  for (const Case& c : cases) {
    const AttentionShape& s = c.s;
    CAPTURE(s.T);
    CAPTURE(s.H);
    CAPTURE(s.Hkv);
    const size_t N = size_t(s.B) * s.T;
    const Vec qkv = random_vec(N * s.qkv_width(), 14, -2, 2);
    Vec out(N * s.H * s.D), lse(size_t(s.B) * s.H * s.T), want(out.size()), want_lse(lse.size());
    cpu::attention_forward(out.data(), lse.data(), qkv.data(), s, c.block);
    naive::attention_forward(want, want_lse, qkv, s);
    CHECK(max_abs_diff(out, want) < 1e-13);
    CHECK(max_abs_diff(lse, want_lse) < 1e-13);
  }
}

TEST_CASE("swiglu forward matches silu(gate) * up") {
  const int N = 9, F = 40;
  const Vec gu = random_vec(size_t(N) * 2 * F, 15, -6, 6);
  Vec out(size_t(N) * F), want(out.size());
  cpu::swiglu_forward(out.data(), gu.data(), N, F);
  naive::swiglu_forward(want, gu, N, F);
  CHECK(max_abs_diff(out, want) < 1e-14);
}

TEST_CASE("cross_entropy matches the explicit softmax, also in place over the logits") {
  const int N = 8, V = 1000;
  const double grad_scale = 1.0 / 6;
  std::vector<int32_t> targets = random_ints(N, 16, 0, V - 1);
  targets[2] = -100;
  targets[5] = -100;
  const Vec logits = random_vec(size_t(N) * V, 17, -20, 20);
  Vec want_losses(N), want_d(logits.size());
  const double want = naive::cross_entropy(want_losses, want_d, logits, targets, N, V, grad_scale);

  Vec losses(N), d(logits.size());
  const double got = cpu::cross_entropy(losses.data(), d.data(), logits.data(), targets.data(), N, V, grad_scale);
  CHECK(got == doctest::Approx(want).epsilon(1e-14));
  CHECK(max_abs_diff(losses, want_losses) < 1e-12);
  CHECK(max_abs_diff(d, want_d) < 1e-15);

  Vec inplace = logits;  // dlogits aliasing logits
  const double got_inplace =
      cpu::cross_entropy(losses.data(), inplace.data(), inplace.data(), targets.data(), N, V, grad_scale);
  CHECK(got_inplace == got);
  CHECK(max_abs_diff(inplace, d) == 0.0);
}

TEST_CASE("embedding forward and backward match the naive gather and scatter") {
  const int N = 50, C = 130, V = 7;  // C spans several channel blocks, tokens repeat
  const std::vector<int32_t> tokens = random_ints(N, 18, 0, V - 1);
  const Vec table = random_vec(size_t(V) * C, 19), dout = random_vec(size_t(N) * C, 20);
  Vec out(size_t(N) * C), want(out.size());
  cpu::embedding_forward(out.data(), tokens.data(), table.data(), N, C);
  naive::embedding_forward(want, tokens, table, N, C);
  CHECK(out == want);
  Vec dtable = table, want_dtable = table;
  cpu::embedding_backward(dtable.data(), dout.data(), tokens.data(), N, C, V);
  naive::embedding_backward(want_dtable, dout, tokens, N, C);
  CHECK(dtable == want_dtable);  // same additions in the same order
}

TEST_CASE("row chunks of the weight gradients equal the rows of the whole gradient") {
  // ZeRO-2 computes weight gradients chunk by chunk into its buckets.
  const int M = 300, N = 70, K = 2500, V = 9, C = 130, Ntok = 40;
  const Vec a = random_vec(size_t(K) * M, 30), b = random_vec(size_t(K) * N, 31);
  Vec whole(size_t(M) * N);
  naive::matmul(whole, a, b, M, N, K, true, false, false);
  for (auto [r0, r1] : {std::pair{0, 300}, std::pair{0, 7}, std::pair{7, 150}, std::pair{150, 300}}) {
    CAPTURE(r0);
    const Vec init = random_vec(size_t(r1 - r0) * N, 32);
    for (bool acc : {false, true}) {
      Vec got = init;
      cpu::matmul_tn_rows(got.data(), a.data(), b.data(), M, N, K, r0, r1, acc);
      double worst = 0;
      for (int r = r0; r < r1; ++r)
        for (int n = 0; n < N; ++n) {
          const double want = whole[size_t(r) * N + n] + (acc ? init[size_t(r - r0) * N + n] : 0.0);
          worst = std::max(worst, std::abs(got[size_t(r - r0) * N + n] - want));
        }
      CHECK(worst < 1e-10);
    }
  }
  const std::vector<int32_t> tokens = random_ints(Ntok, 33, 0, V - 1);
  const Vec dout = random_vec(size_t(Ntok) * C, 34);
  Vec full(size_t(V) * C, 0.0);
  cpu::embedding_backward(full.data(), dout.data(), tokens.data(), Ntok, C, V);
  for (auto [r0, r1] : {std::pair{0, 9}, std::pair{0, 4}, std::pair{4, 9}, std::pair{3, 4}}) {
    Vec rows(size_t(r1 - r0) * C, 0.0);
    cpu::embedding_backward_rows(rows.data(), dout.data(), tokens.data(), Ntok, C, r0, r1, V);
    CHECK(rows == Vec(full.begin() + size_t(r0) * C, full.begin() + size_t(r1) * C));  // same sums, same order
  }
}

TEST_CASE("elementwise ops and sum_squares") {
  const int64_t n = 100003;  // several blocks, ragged end
  const Vec a = random_vec(n, 21), b = random_vec(n, 22);
  Vec out(n);
  cpu::add(out.data(), a.data(), b.data(), n);
  for (int64_t i = 0; i < n; i += 997) CHECK(out[i] == a[i] + b[i]);
  Vec acc = a;
  cpu::accumulate(acc.data(), b.data(), n);
  CHECK(acc == out);
  cpu::scale(acc.data(), 0.5, n);
  for (int64_t i = 0; i < n; i += 997) CHECK(acc[i] == 0.5 * out[i]);
  double want = 0;
  for (double x : a) want += x * x;
  CHECK(cpu::sum_squares(a.data(), n) == doctest::Approx(want).epsilon(1e-13));
  const std::vector<float> af = to_float(a);
  double wantf = 0;
  for (float x : af) wantf += double(x) * double(x);
  CHECK(cpu::sum_squares(af.data(), n) == doctest::Approx(wantf).epsilon(1e-13));
}

TEST_CASE("exp_approx is within 2 ulp of the correctly rounded exp") {
  int worst = 0;
  for (float x = -87.0f; x < 88.0f; x += 0.000731f * (1.0f + std::abs(x))) {
    const float got = cpu::exp_approx(x);
    const float want = static_cast<float>(std::exp(double(x)));
    worst = std::max(worst, std::abs(std::bit_cast<int32_t>(got) - std::bit_cast<int32_t>(want)));
  }
  CHECK(worst <= 2);
  CHECK(cpu::exp_approx(0.0f) == 1.0f);
  CHECK(cpu::exp_approx(-200.0f) == 0.0f);
  CHECK(std::isinf(cpu::exp_approx(200.0f)));
  CHECK(std::isnan(cpu::exp_approx(std::nanf(""))));
}
