// Which BLAS the process runs, with which kernels, and its thread count.
//
// OpenBLAS picks its kernels ("core") from the CPU when it loads unless
// OPENBLAS_CORETYPE names one. Pinning an AVX2 core (e.g. Haswell, as this
// workplace's environment does) on an AVX-512 CPU halves sgemm throughput
// (docs/benchmarks.md), so programs should report BlasCoreWarning(). Thread-safe.
#pragma once

#include <string>

namespace compressd::engine {

struct BlasInfo {
  std::string core;           // OpenBLAS core name, "" for another BLAS
  bool cpu_avx512 = false;    // the CPU supports AVX-512 F/DQ/BW/VL
  bool avx512_core = false;   // the core in use has AVX-512 kernels
};

BlasInfo GetBlasInfo();

// A one-line warning when the CPU has AVX-512 but OpenBLAS runs an AVX2-only
// core (naming OPENBLAS_CORETYPE if it is set), else "".
std::string BlasCoreWarning();

// Sets OpenBLAS's own thread count (no-op for another BLAS).
void SetBlasThreads(int n);

}  // namespace compressd::engine
