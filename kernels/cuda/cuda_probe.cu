#include <cublasLt.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <string>
#include <vector>

#include "kernels/cuda/cuda_probe.h"

namespace fm::kernels::cuda {

namespace {

std::string describe(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + " (" + std::to_string(static_cast<int>(e)) + "): " +
         cudaGetErrorString(e);
}

__global__ void iota_kernel(int* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = 3 * i + 1;
}

// Runs iota_kernel on the current device and checks its output; empty string on success.
std::string run_probe_kernel() {
  constexpr int n = 1000;
  int* device = nullptr;
  cudaError_t e = cudaMalloc(&device, n * sizeof(int));
  if (e != cudaSuccess) return "cudaMalloc: " + describe(e);
  iota_kernel<<<(n + 255) / 256, 256>>>(device, n);
  e = cudaGetLastError();
  std::vector<int> host(n, 0);
  if (e == cudaSuccess) e = cudaMemcpy(host.data(), device, n * sizeof(int), cudaMemcpyDeviceToHost);
  cudaFree(device);
  if (e != cudaSuccess) return "probe kernel: " + describe(e);
  for (int i = 0; i < n; ++i)
    if (host[i] != 3 * i + 1) return "probe kernel wrote wrong values at " + std::to_string(i);
  return {};
}

}  // namespace

bool device_available(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    if (why) *why = describe(e);
    cudaGetLastError();  // reset the last-error state so later CUDA calls start clean
    return false;
  }
  if (count == 0) {
    if (why) *why = "no CUDA devices";
    return false;
  }
  return true;
}

LinkReport link_report() {
  LinkReport r;
  ncclGetVersion(&r.nccl_version);
  cudaRuntimeGetVersion(&r.cuda_runtime_version);
  cudaDriverGetVersion(&r.cuda_driver_version);
  r.cublaslt_version = cublasLtGetVersion();
  std::string why;
  if (!device_available(&why)) return r;
  cudaGetDeviceCount(&r.device_count);
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    r.device_name = prop.name;
    r.compute_capability = prop.major * 10 + prop.minor;
  }
  cublasLtHandle_t handle = nullptr;
  const cublasStatus_t st = cublasLtCreate(&handle);
  if (st == CUBLAS_STATUS_SUCCESS) {
    r.cublaslt_handle_ok = cublasLtDestroy(handle) == CUBLAS_STATUS_SUCCESS;
    if (!r.cublaslt_handle_ok) r.error = "cublasLtDestroy failed";
  } else {
    r.error = std::string("cublasLtCreate: ") + cublasGetStatusString(st);
  }
  const std::string kernel_error = run_probe_kernel();
  r.kernel_ok = kernel_error.empty();
  if (r.error.empty()) r.error = kernel_error;
  return r;
}

std::string compiled_archs() { return FM_GPU_ARCHS; }

}  // namespace fm::kernels::cuda
