// Fused softmax cross-entropy, one task per block of rows and one sweep set per row:
//   m = max(x);  e_j = exp(x_j - m) (kept in dlogits when it is wanted);  l = sum(e)
//   loss = m + log(l) - x[target];  dlogits = grad_scale * (e / l - onehot(target))
// The target logit is read before the row is overwritten, so dlogits may alias logits. Row losses
// are combined in double, in row order.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/row_kernels.h"
#include "runtime/base/error.h"

namespace fm::kernels::cpu {

namespace {
constexpr int32_t kIgnoreIndex = -100;
}  // namespace

template <typename T>
double cross_entropy(T* losses, T* dlogits, const T* logits, const int32_t* targets, int N, int V,
                     T grad_scale) {
  std::vector<double> row_loss(static_cast<size_t>(std::max(N, 0)), 0.0);
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max(V, 1));
  for_blocks(N, grain, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const int32_t target = targets[n];
      const T* x = logits + n * V;
      T* dx = dlogits ? dlogits + n * V : nullptr;
      if (target == kIgnoreIndex) {
        if (dx) std::memset(dx, 0, sizeof(T) * V);
        continue;
      }
      FM_CHECK(target >= 0 && target < V, "cross_entropy: target out of range");
      const T x_target = x[target];
      const T mx = row_max(x, V);
      const T sum = row_exp_sum(dx, x, V, mx);
      if (dx) {
        const T f = grad_scale / sum;
#pragma omp simd
        for (int j = 0; j < V; ++j) dx[j] *= f;
        dx[target] -= grad_scale;
      }
      row_loss[n] = double(mx) + std::log(double(sum)) - double(x_target);
    }
  });
  double total = 0;
  for (int n = 0; n < N; ++n) {
    total += row_loss[n];
    if (losses) losses[n] = static_cast<T>(row_loss[n]);
  }
  return total;
}

template double cross_entropy<float>(float*, float*, const float*, const int32_t*, int, int, float);
template double cross_entropy<double>(double*, double*, const double*, const int32_t*, int, int, double);

}  // namespace fm::kernels::cpu
