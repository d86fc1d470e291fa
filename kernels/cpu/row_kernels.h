// Reductions over one contiguous row, for the loops of the CPU kernels that reduce.
//
// They live in their own translation unit on purpose: inlined into TBB task bodies, GCC vectorised
// such reduction loops in some copies and left others scalar (3-15x slower); compiled here each is
// vectorised once, and a call per row costs nothing next to the row. Sums use a fixed set of
// independent accumulators, so a result depends on the row's values and length only (never on
// threads), which keeps every kernel bitwise reproducible.
#pragma once

#include <cstdint>

namespace fm::kernels::cpu {

template <typename T>
T row_max(const T* x, int64_t n);  // -inf for n == 0
template <typename T>
T row_sum_squares(const T* x, int64_t n);
template <typename T>
double row_sum_squares_f64(const T* x, int64_t n);  // accumulated in double
template <typename T>
T row_dot(const T* a, const T* b, int64_t n);
template <typename T>
T row_dot3(const T* a, const T* b, const T* c, int64_t n);  // sum a*b*c
// out[j] = exp(x[j] - shift) (out may alias x, or be null), returns the sum of those values.
template <typename T>
T row_exp_sum(T* out, const T* x, int64_t n, T shift);

}  // namespace fm::kernels::cpu
