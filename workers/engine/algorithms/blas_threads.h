// OpenBLAS's own threads for one large BLAS/LAPACK call of the solvers.
//
// The worker runs OpenBLAS at one thread: its thread pool splits the
// forward's and the Hessians' work itself (nn/cpu_backend.h). The solvers'
// large operations (the float64 Cholesky factor and its inverse, the sweep's
// lazy updates, the reconstruction error's products) run on the job's own
// thread while that pool waits, so for the call they borrow the job's cores
// through OpenBLAS's threads. Measured on this project's machines: sgemm
// gives the same bits on any thread count; dpotrf/dtrtri give the same bits
// for the same thread count only (OpenBLAS's parallel factorization blocks
// differently), which is why block checkpoints and EvoPress parts carry the
// job's thread count (docs/algorithms.md, "Checkpoints").
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
