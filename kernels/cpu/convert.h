// Element conversions between the float types of kernels/ops.h, for CpuOps::copy and the optional
// low-precision parameter copy of adam_update. bf16 rounds to nearest even like torch's
// float->bfloat16 cast (NaN stays a quiet NaN); f16 uses the compiler's _Float16 (F16C on x86-64-v3).
#pragma once

#include <bit>
#include <cstdint>

namespace fm::kernels::cpu {

inline uint16_t float_to_bf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float bf16_to_float(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

inline uint16_t float_to_f16(float f) { return std::bit_cast<uint16_t>(static_cast<_Float16>(f)); }
inline float f16_to_float(uint16_t h) { return static_cast<float>(std::bit_cast<_Float16>(h)); }

}  // namespace fm::kernels::cpu
