// Elementary functions written so that the loops around them vectorise.
//
// The libm exp is a call the compiler cannot vectorise without -ffast-math, and the softmax,
// cross-entropy and SiLU loops spend most of their time in exp. exp_approx(float) uses only
// arithmetic, comparisons and bit casts: round x/ln2 to k, reduce r = x - k ln2 with a two-part ln2
// (|r| <= ln2/2), a degree-7 Taylor polynomial for e^r (truncation < 0.05 ulp), and 2^k assembled
// in the exponent bits. Measured error is within 2 ulp of the correctly rounded result over the
// normal range (tests/kernels checks it). Inputs below -87.3 give 0, above 88.3 give +inf, NaN stays
// NaN. The double overloads call libm: double precision is for tests, not for speed.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace fm::kernels::cpu {

inline float exp_approx(float x) {
  constexpr float kMin = -87.3f, kMax = 88.3f;
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // few significant bits: k * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting rounds to an integer
  float xc = x < kMin ? kMin : x;
  xc = xc > kMax ? kMax : xc;
  const float shifted = xc * kLog2e + kRound;
  const float k = shifted - kRound;
  const int32_t ki = std::bit_cast<int32_t>(shifted) - std::bit_cast<int32_t>(kRound);
  const float r = (xc - k * kLn2Hi) - k * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (ki + 127) << 23;
  const float y = p * std::bit_cast<float>(bits);
  return x < kMin ? 0.0f : (x > kMax ? std::numeric_limits<float>::infinity() : y);
}
inline double exp_approx(double x) { return std::exp(x); }

// 1 / (1 + e^-x)
inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace fm::kernels::cpu
