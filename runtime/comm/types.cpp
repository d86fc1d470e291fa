#include "runtime/comm/types.h"

#include <algorithm>

#include "runtime/base/error.h"

namespace fm::comm {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::U8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::U8: return "u8";
  }
  return "?";
}

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
  }
  return "?";
}

bool dtype_reducible(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::I32 || t == DType::I64;
}

DType from_kernel_dtype(kernels::DType t) {
  switch (t) {
    case kernels::DType::F32: return DType::F32;
    case kernels::DType::BF16: return DType::BF16;
    case kernels::DType::F16: return DType::F16;
    case kernels::DType::I32: return DType::I32;
  }
  FM_CHECK(false, "unknown kernels::DType");
  return DType::U8;
}

namespace {
template <typename T>
void reduce_typed(T* out, const T* in, size_t n, ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      for (size_t i = 0; i < n; ++i) out[i] += in[i];
      break;
    case ReduceOp::Max:
      for (size_t i = 0; i < n; ++i) out[i] = std::max(out[i], in[i]);
      break;
    case ReduceOp::Min:
      for (size_t i = 0; i < n; ++i) out[i] = std::min(out[i], in[i]);
      break;
  }
}
}  // namespace

void reduce_into(void* out, const void* in, size_t count, DType t, ReduceOp op) {
  switch (t) {
    case DType::F32: return reduce_typed(static_cast<float*>(out), static_cast<const float*>(in), count, op);
    case DType::F64: return reduce_typed(static_cast<double*>(out), static_cast<const double*>(in), count, op);
    case DType::I32: return reduce_typed(static_cast<int32_t*>(out), static_cast<const int32_t*>(in), count, op);
    case DType::I64: return reduce_typed(static_cast<int64_t*>(out), static_cast<const int64_t*>(in), count, op);
    default: FM_CHECK(false, std::string("reduction of ") + dtype_name(t) + " is not supported");
  }
}

}  // namespace fm::comm
