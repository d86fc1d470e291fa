// Every backward pass of the CPU kernels against central finite differences, in double precision.
// Each op's output is projected on a fixed random tensor R (loss = <R, f(x)>), so dout = R.
#include <doctest/doctest.h>

#include "kernels/cpu/cpu_kernels.h"
#include "tests/kernels/test_util.h"

namespace cpu = fm::kernels::cpu;
using fm::kernels::AttentionShape;
using namespace fm::kernels::testing;

namespace {
constexpr double kTol = 1e-6;
}

TEST_CASE("rmsnorm backward matches finite differences, overwriting or accumulating dx") {
  const int N = 5, C = 12;
  const double eps = 1e-5;
  const Vec x0 = random_vec(N * C, 1), w0 = random_vec(C, 2, 0.5, 1.5), R = random_vec(N * C, 3);
  auto forward = [&](const Vec& x, const Vec& w) {
    Vec out(N * C), rstd(N);
    cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, eps);
    return dot(R, out);
  };
  Vec out(N * C), rstd(N);
  cpu::rmsnorm_forward(out.data(), rstd.data(), x0.data(), w0.data(), N, C, eps);

  for (bool accumulate : {false, true}) {
    CAPTURE(accumulate);
    const Vec dx_before = random_vec(N * C, 4), dw_before = random_vec(C, 5);
    Vec dx = dx_before, dw = dw_before;
    cpu::rmsnorm_backward(dx.data(), dw.data(), R.data(), x0.data(), w0.data(), rstd.data(), N, C, accumulate);
    Vec gx(N * C), gw(C);
    for (size_t i = 0; i < gx.size(); ++i) gx[i] = dx[i] - (accumulate ? dx_before[i] : 0.0);
    for (size_t i = 0; i < gw.size(); ++i) gw[i] = dw[i] - dw_before[i];  // dw always accumulates
    CHECK(grad_check(x0, gx, sample_indices(gx.size(), 1000), [&](const Vec& x) { return forward(x, w0); }) < kTol);
    CHECK(grad_check(w0, gw, sample_indices(gw.size(), 1000), [&](const Vec& w) { return forward(x0, w); }) < kTol);
  }
}

TEST_CASE("rope backward is the derivative of rope forward (query and key heads; values untouched)") {
  const AttentionShape s{2, 5, 4, 2, 6};
  const Vec table = random_vec(s.T * s.D, 6);  // any table: the op is linear in qkv for fixed cos/sin
  const Vec x0 = random_vec(size_t(s.B) * s.T * s.qkv_width(), 7), R = random_vec(x0.size(), 8);
  auto loss = [&](const Vec& x) {
    Vec y = x;
    cpu::rope_forward(y.data(), table.data(), s);
    return dot(R, y);
  };
  Vec dx = R;
  cpu::rope_backward(dx.data(), table.data(), s);
  CHECK(grad_check(x0, dx, sample_indices(x0.size(), 2000), loss) < kTol);
}

TEST_CASE("attention backward matches finite differences (GQA ratios, ragged blocks)") {
  struct Case {
    AttentionShape s;
    int block;
  };
  // Small blocks so that T spans several of them and ends inside one; H/Hkv = 1, 2, 4.
  const Case cases[] = {
      {{2, 11, 4, 4, 4}, 4},
      {{2, 11, 4, 2, 4}, 4},
      {{1, 13, 4, 1, 6}, 5},
      {{1, 9, 2, 1, 8}, 0},  // default block, larger than T
  };
  for (const Case& c : cases) {
    const AttentionShape& s = c.s;
    CAPTURE(s.H);
    CAPTURE(s.Hkv);
    CAPTURE(s.T);
    const size_t N = size_t(s.B) * s.T;
    const Vec qkv0 = random_vec(N * s.qkv_width(), 10 + s.Hkv, -1.5, 1.5);
    const Vec R = random_vec(N * s.H * s.D, 20 + s.Hkv);
    auto loss = [&](const Vec& qkv) {
      Vec out(N * s.H * s.D), lse(size_t(s.B) * s.H * s.T);
      cpu::attention_forward(out.data(), lse.data(), qkv.data(), s, c.block);
      return dot(R, out);
    };
    Vec out(N * s.H * s.D), lse(size_t(s.B) * s.H * s.T);
    cpu::attention_forward(out.data(), lse.data(), qkv0.data(), s, c.block);
    Vec dqkv(qkv0.size(), 12345.0);  // garbage: backward must overwrite every entry
    cpu::attention_backward(dqkv.data(), R.data(), qkv0.data(), out.data(), lse.data(), s, c.block);
    CHECK(grad_check(qkv0, dqkv, sample_indices(qkv0.size(), 3000), loss) < kTol);
  }
}

TEST_CASE("attention backward gives the same gradients however the keys are split into ranges") {
  const AttentionShape s{1, 130, 4, 2, 8};  // blocks of 16: 9 blocks, the last ragged
  const size_t N = size_t(s.B) * s.T;
  const Vec qkv = random_vec(N * s.qkv_width(), 70, -2, 2), dout = random_vec(N * s.H * s.D, 71);
  Vec out(N * s.H * s.D), lse(size_t(s.B) * s.H * s.T);
  cpu::attention_forward(out.data(), lse.data(), qkv.data(), s, 16);
  Vec one(qkv.size());
  cpu::attention_backward(one.data(), dout.data(), qkv.data(), out.data(), lse.data(), s, 16, 1);
  for (int splits : {0, 2, 3, 4, 9}) {
    CAPTURE(splits);
    Vec split(qkv.size(), 99.0);
    cpu::attention_backward(split.data(), dout.data(), qkv.data(), out.data(), lse.data(), s, 16, splits);
    CHECK(max_abs_diff(split, one) < 1e-12);
  }
}

TEST_CASE("swiglu backward matches finite differences") {
  const int N = 4, F = 9;
  const Vec gu0 = random_vec(N * 2 * F, 30, -4, 4), R = random_vec(N * F, 31);
  auto loss = [&](const Vec& gu) {
    Vec out(N * F);
    cpu::swiglu_forward(out.data(), gu.data(), N, F);
    return dot(R, out);
  };
  Vec dgu(gu0.size(), 7.0);
  cpu::swiglu_backward(dgu.data(), R.data(), gu0.data(), N, F);
  CHECK(grad_check(gu0, dgu, sample_indices(gu0.size(), 1000), loss) < kTol);
}

TEST_CASE("cross_entropy gradient matches finite differences, with ignored rows and grad_scale") {
  const int N = 6, V = 17;
  const double grad_scale = 0.37;
  const std::vector<int32_t> targets = {3, -100, 0, 16, -100, 3};
  const Vec logits0 = random_vec(N * V, 40, -3, 3);
  auto loss = [&](const Vec& x) {
    return cpu::cross_entropy<double>(nullptr, nullptr, x.data(), targets.data(), N, V, 1.0);
  };
  Vec losses(N), dlogits(N * V, 9.0);
  const double total =
      cpu::cross_entropy<double>(losses.data(), dlogits.data(), logits0.data(), targets.data(), N, V, grad_scale);
  CHECK(total == doctest::Approx(loss(logits0)).epsilon(1e-14));
  Vec scaled_back(dlogits.size());
  for (size_t i = 0; i < dlogits.size(); ++i) scaled_back[i] = dlogits[i] / grad_scale;
  CHECK(grad_check(logits0, scaled_back, sample_indices(logits0.size(), 1000), loss) < kTol);
  for (int n : {1, 4}) {
    CHECK(losses[n] == 0.0);
    for (int j = 0; j < V; ++j) CHECK(dlogits[size_t(n) * V + j] == 0.0);
  }
}

TEST_CASE("embedding backward with repeated tokens matches finite differences") {
  const int N = 9, C = 5, V = 4;
  const std::vector<int32_t> tokens = {1, 3, 1, 1, 0, 3, 2, 1, 0};
  const Vec table0 = random_vec(V * C, 50), R = random_vec(N * C, 51);
  auto loss = [&](const Vec& table) {
    Vec out(N * C);
    cpu::embedding_forward(out.data(), tokens.data(), table.data(), N, C);
    return dot(R, out);
  };
  const Vec before = random_vec(V * C, 52);
  Vec dtable = before;
  cpu::embedding_backward(dtable.data(), R.data(), tokens.data(), N, C, V);
  Vec grad(V * C);
  for (size_t i = 0; i < grad.size(); ++i) grad[i] = dtable[i] - before[i];
  CHECK(grad_check(table0, grad, sample_indices(grad.size(), 1000), loss) < kTol);
}

TEST_CASE("matmul products are the gradients of one another (linear layer)") {
  // y = x W^T: dx = dy W (matmul_nn), dW += dy^T x (matmul_tn).
  const int M = 7, N = 5, K = 6;
  const Vec x0 = random_vec(M * K, 60), W0 = random_vec(N * K, 61), R = random_vec(M * N, 62);
  auto loss = [&](const Vec& x, const Vec& W) {
    Vec y(M * N);
    cpu::matmul_nt(y.data(), x.data(), W.data(), M, N, K, false);
    return dot(R, y);
  };
  Vec dx(M * K), dW(N * K, 0.0);
  cpu::matmul_nn(dx.data(), R.data(), W0.data(), M, K, N, false);
  cpu::matmul_tn(dW.data(), R.data(), x0.data(), N, K, M, true);
  CHECK(grad_check(x0, dx, sample_indices(dx.size(), 1000), [&](const Vec& x) { return loss(x, W0); }) < kTol);
  CHECK(grad_check(W0, dW, sample_indices(dW.size(), 1000), [&](const Vec& W) { return loss(x0, W); }) < kTol);
}
