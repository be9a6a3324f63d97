// Error handling for CUDA code (as ggml-cuda): every runtime, cuBLAS and
// cuSOLVER call goes through one of these macros, which turn a failure into
// an absl::Status naming the call, so no CUDA error aborts the worker. Only
// for .cu and CUDA-aware .cc files of workers/cuda/.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace compressd::cuda {

// INTERNAL for a failed call, RESOURCE_EXHAUSTED for out-of-memory (a job
// sized for the device should be refused before it starts; see device_pool.h).
inline absl::Status CudaError(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  // Clear the runtime's last error (a failed cudaMalloc sets it), so a later
  // launch check does not report this failure again as its own.
  (void)cudaGetLastError();
  const std::string msg = absl::StrCat(what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
  if (e == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}
inline absl::Status CublasError(cublasStatus_t e, const char* what) {
  if (e == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const std::string msg = absl::StrCat(what, ": cuBLAS status ", static_cast<int>(e));
  if (e == CUBLAS_STATUS_ALLOC_FAILED) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}
inline absl::Status CusolverError(cusolverStatus_t e, const char* what) {
  if (e == CUSOLVER_STATUS_SUCCESS) return absl::OkStatus();
  const std::string msg = absl::StrCat(what, ": cuSOLVER status ", static_cast<int>(e));
  if (e == CUSOLVER_STATUS_ALLOC_FAILED) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

}  // namespace compressd::cuda

#define COMPRESSD_CUDA_CAT_(a, b) a##b
#define COMPRESSD_CUDA_CAT(a, b) COMPRESSD_CUDA_CAT_(a, b)
#define CUDA_RETURN_IF_ERROR_IMPL_(s, expr, fn)                     \
  do {                                                               \
    absl::Status s = ::compressd::cuda::fn((expr), #expr);          \
    if (!s.ok()) return s;                                           \
  } while (0)
#define CUDA_RETURN_IF_ERROR(expr) \
  CUDA_RETURN_IF_ERROR_IMPL_(COMPRESSD_CUDA_CAT(cuda_status_, __LINE__), expr, CudaError)
#define CUBLAS_RETURN_IF_ERROR(expr) \
  CUDA_RETURN_IF_ERROR_IMPL_(COMPRESSD_CUDA_CAT(cublas_status_, __LINE__), expr, CublasError)
#define CUSOLVER_RETURN_IF_ERROR(expr) \
  CUDA_RETURN_IF_ERROR_IMPL_(COMPRESSD_CUDA_CAT(cusolver_status_, __LINE__), expr, CusolverError)
// After a kernel launch: the launch's own error (bad configuration).
#define CUDA_RETURN_IF_LAUNCH_FAILED() CUDA_RETURN_IF_ERROR(cudaGetLastError())
