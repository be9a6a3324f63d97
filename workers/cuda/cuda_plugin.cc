// The entry points of libcompressd_cuda.so, the CUDA plugin that
// compress-worker loads only when a GPU device is asked for (devices.cc):
// the worker binary itself links no CUDA library, so a CPU worker does not
// pay the ~190 MiB resident that loading cuBLAS/cuSOLVER costs. Plain C
// entry points; the solver crosses as an engine::SolverBackend (same
// compiler and headers: built from this tree).
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "workers/cuda/cuda_solver.h"
#include "workers/cuda/plugin_abi.h"

extern "C" {

__attribute__((visibility("default"))) int compressd_cuda_plugin_abi() {
  return COMPRESSD_CUDA_PLUGIN_ABI;
}

__attribute__((visibility("default"))) int compressd_cuda_list_gpus(
    compressd_cuda_gpu* out, int capacity, char* why_none, size_t why_len) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    std::snprintf(why_none, why_len, "CUDA runtime: %s", cudaGetErrorString(e));
    return 0;
  }
  int n = 0;
  for (int i = 0; i < count && n < capacity; ++i) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    compressd_cuda_gpu& g = out[n++];
    g.index = i;
    std::snprintf(g.name, sizeof(g.name), "%s", prop.name);
    g.cc_major = prop.major;
    g.cc_minor = prop.minor;
    g.total_bytes = prop.totalGlobalMem;
    size_t free_bytes = 0, total = 0;
    g.free_bytes = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total) == cudaSuccess) {
      g.free_bytes = free_bytes;
    }
  }
  if (n == 0) std::snprintf(why_none, why_len, "the CUDA runtime reports no devices");
  return n;
}

__attribute__((visibility("default"))) void* compressd_cuda_create_solver(int device, int* code,
                                                                          char* error,
                                                                          size_t error_len) {
  auto solver = compressd::cuda::CudaSolver::Create(compressd::cuda::CudaSolverOptions{device});
  if (!solver.ok()) {
    *code = static_cast<int>(solver.status().code());
    std::snprintf(error, error_len, "%s", std::string(solver.status().message()).c_str());
    return nullptr;
  }
  compressd::engine::SolverBackend* backend = solver->release();
  return backend;
}

}  // extern "C"
