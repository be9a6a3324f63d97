// The C interface between compress-worker (devices.cc) and its CUDA plugin
// (cuda_plugin.cc, libcompressd_cuda.so). Bump the ABI number on any change.
#pragma once

#include <cstddef>
#include <cstdint>

#define COMPRESSD_CUDA_PLUGIN_ABI 1

extern "C" {

struct compressd_cuda_gpu {
  int index;
  char name[256];
  int cc_major;
  int cc_minor;
  uint64_t total_bytes;
  uint64_t free_bytes;
};

// COMPRESSD_CUDA_PLUGIN_ABI of the plugin.
typedef int (*compressd_cuda_plugin_abi_fn)();
// Fills out[0, n) and returns n; with n == 0, why_none says why.
typedef int (*compressd_cuda_list_gpus_fn)(compressd_cuda_gpu* out, int capacity, char* why_none,
                                           size_t why_len);
// A new engine::SolverBackend* for the device, or null with an absl status
// code in *code and its message in error.
typedef void* (*compressd_cuda_create_solver_fn)(int device, int* code, char* error,
                                                 size_t error_len);
}
