// OpenBLAS's own threads for one large LAPACK call of the solvers.
//
// The worker runs OpenBLAS at one thread: its thread pool splits the
// forward's and the Hessians' work itself (nn/cpu_backend.h), and the
// solvers split their products' rows (ParallelGemmRows, obs_sweep.h). The
// float64 Cholesky factor and its inverse have no such split, so a wide one
// (InverseHessianUpper, kThreadedFactorDim) borrows the job's cores through
// OpenBLAS's threads for the call. Its bits may then depend on the thread
// count (OpenBLAS's parallel factorization may block differently), which
// block checkpoints and EvoPress parts allow for: they carry the job's
// thread count (docs/algorithms.md, "Checkpoints").
//
// One scope at a time in the process (a mutex): two concurrent solves never
// see each other's setting, so each is deterministic. Scopes do not nest.
#pragma once

#include <mutex>

namespace compressd::engine {

class ScopedBlasThreads {
 public:
  // threads < 1 is taken as 1. A no-op apart from the lock for another BLAS.
  explicit ScopedBlasThreads(int threads);
  ~ScopedBlasThreads();
  ScopedBlasThreads(const ScopedBlasThreads&) = delete;
  ScopedBlasThreads& operator=(const ScopedBlasThreads&) = delete;

 private:
  std::unique_lock<std::mutex> lock_;
  int previous_ = 0;  // 0: nothing to restore
};

}  // namespace compressd::engine
