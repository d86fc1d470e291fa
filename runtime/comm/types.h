// Element types and reduction operators of the communicators.
//
// Communicators move raw buffers described by (pointer, element count, DType), so a device-memory
// backend fits the same interface. Reductions (all_reduce, reduce_scatter) are defined for F32,
// F64, I32 and I64; BF16, F16 and U8 can only be moved (broadcast, all_gather, send/recv).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/ops.h"

namespace fm::comm {

enum class DType : uint8_t { F32, F64, I32, I64, BF16, F16, U8 };
enum class ReduceOp : uint8_t { Sum, Max, Min };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
const char* reduce_op_name(ReduceOp op);
bool dtype_reducible(DType t);

// The communicator type of a kernel buffer type (same storage).
DType from_kernel_dtype(kernels::DType t);

template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::F32;
  else if constexpr (std::is_same_v<T, double>) return DType::F64;
  else if constexpr (std::is_same_v<T, int32_t>) return DType::I32;
  else if constexpr (std::is_same_v<T, int64_t>) return DType::I64;
  else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, char>) return DType::U8;
  else static_assert(sizeof(T) == 0, "no communicator DType for this type");
}

// out[i] = op(out[i], in[i]) for i < count; `out` may equal `in`.
void reduce_into(void* out, const void* in, size_t count, DType t, ReduceOp op);

}  // namespace fm::comm
