#include "workers/engine/algorithms/blas_threads.h"

#include <algorithm>

// OpenBLAS extensions, weak so that another CBLAS still links.
extern "C" {
void openblas_set_num_threads(int num_threads) __attribute__((weak));
int openblas_get_num_threads(void) __attribute__((weak));
}

namespace compressd::engine {
namespace {

std::mutex& BlasThreadsMutex() {
  static std::mutex* const mu = new std::mutex();
  return *mu;
}

}  // namespace

ScopedBlasThreads::ScopedBlasThreads(int threads) : lock_(BlasThreadsMutex()) {
  if (openblas_set_num_threads == nullptr || openblas_get_num_threads == nullptr) return;
  previous_ = openblas_get_num_threads();
  const int want = std::max(1, threads);
  if (want == previous_) {
    previous_ = 0;
    return;
  }
  openblas_set_num_threads(want);
}

ScopedBlasThreads::~ScopedBlasThreads() {
  if (previous_ > 0) openblas_set_num_threads(previous_);
}

}  // namespace compressd::engine
