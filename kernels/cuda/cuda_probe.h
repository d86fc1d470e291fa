// The seam of the CUDA backend: questions the rest of the program can ask before any GPU work.
//
// This header needs no CUDA headers, so plain C++ code (tests, the engine's backend choice) can
// include it; the library behind it is built only when meson found nvcc, cuBLAS(Lt) and NCCL
// (fm_kernels_cuda_dep). Nothing here throws or aborts when no GPU or no driver is present: the
// answers say so instead (on a machine without a driver, CUDA reports error 35,
// cudaErrorInsufficientDriver).
#pragma once

#include <string>

namespace fm::kernels::cuda {

// True when at least one CUDA device can be used. Otherwise false, with the reason (the CUDA error
// name and text, or "no CUDA devices") in *why when why is non-null.
bool device_available(std::string* why = nullptr);

// What the linked CUDA stack reports about itself; proves that nvcc, cudart, cuBLASLt and NCCL
// all linked into the program.
struct LinkReport {
  int nccl_version = 0;          // ncclGetVersion, e.g. 22809 for 2.28.9
  int cuda_runtime_version = 0;  // cudaRuntimeGetVersion, e.g. 13000
  int cuda_driver_version = 0;   // cudaDriverGetVersion, 0 without a driver
  size_t cublaslt_version = 0;   // cublasLtGetVersion
  int device_count = 0;
  std::string device_name;       // device 0, when there is one
  int compute_capability = 0;    // device 0, e.g. 90
  // Only attempted when a device exists: a cuBLASLt handle was created and destroyed, and a small
  // kernel compiled into this library ran on device 0 and wrote the expected values.
  bool cublaslt_handle_ok = false;
  bool kernel_ok = false;
  std::string error;             // first failure, empty when all attempted steps succeeded
};
LinkReport link_report();

// "sm_90 sm_80" style list of the architectures this library was compiled for.
std::string compiled_archs();

}  // namespace fm::kernels::cuda
