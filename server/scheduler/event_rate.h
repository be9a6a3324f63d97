// A per-task token bucket on reported events: a worker (even one with a valid
// key) cannot flood the event log and every WatchJob stream. A task may
// report `per_second` events a second on average, in bursts of up to
// `burst`; over it ReportEvents is RESOURCE_EXHAUSTED and the worker's
// EventReporter keeps the batch and sends it again later. Thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace compressd {

class EventRateLimiter {
 public:
  // per_second <= 0: unlimited.
  EventRateLimiter(double per_second, double burst) : per_second_(per_second), burst_(burst) {}

  // Takes `n` events from `task_id`'s bucket at `now_ms`; RESOURCE_EXHAUSTED
  // naming the limit (and taking nothing) when fewer are left.
  absl::Status Take(const std::string& task_id, int n, int64_t now_ms);
  // Drops the task's bucket (its lease ended).
  void Forget(const std::string& task_id);

 private:
  struct Bucket {
    double tokens = 0;
    int64_t last_ms = 0;
  };
  static constexpr size_t kMaxBuckets = 100000;

  const double per_second_;
  const double burst_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compressd
