// A fixed pool of worker threads for data-parallel loops in the CPU kernels.
//
// ParallelFor hands out items dynamically (an atomic counter), so uneven
// items (causal attention tiles) balance across threads; the calling thread
// works too, so a pool of N threads starts N - 1 workers. One loop runs at a
// time: concurrent ParallelFor calls from different threads are serialized.
// Thread-safe. A loop body must not call ParallelFor on the same pool.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace compressd::engine {

class ThreadPool {
 public:
  // `num_threads` <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(i) once for every i in [0, n), spread over the threads, and
  // returns when all calls have returned.
  void ParallelFor(int64_t n, const std::function<void(int64_t)>& fn);

  // Splits [0, n) into at most num_threads() contiguous ranges of at least
  // `min_chunk` items (the last may be shorter) and calls fn(begin, end) for each.
  void ParallelRanges(int64_t n, int64_t min_chunk,
                      const std::function<void(int64_t, int64_t)>& fn);

 private:
  void WorkerLoop();
  void RunItems();

  const int num_threads_;
  absl::Mutex call_mu_;  // serializes ParallelFor calls
  absl::Mutex mu_;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_workers_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // The current loop; written under mu_ before generation_ is bumped.
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
  std::vector<std::thread> workers_;
};

}  // namespace compressd::engine
