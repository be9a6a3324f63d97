#include "server/scheduler/event_rate.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace compressd {

absl::Status EventRateLimiter::Take(const std::string& task_id, int n, int64_t now_ms) {
  if (per_second_ <= 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  if (buckets_.size() >= kMaxBuckets && buckets_.find(task_id) == buckets_.end()) {
    buckets_.clear();  // leases that ended without Forget (a crashed server's): start over
  }
  auto [it, inserted] = buckets_.try_emplace(task_id, Bucket{burst_, now_ms});
  Bucket& bucket = it->second;
  const double elapsed_s = std::max<int64_t>(0, now_ms - bucket.last_ms) / 1000.0;
  bucket.tokens = std::min(burst_, bucket.tokens + elapsed_s * per_second_);
  bucket.last_ms = now_ms;
  if (bucket.tokens < n) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "limit max_events_per_task_per_s: task %s reported %d events with %.0f left of its "
        "budget (%.0f a second, bursts of %.0f); send them again later",
        task_id, n, bucket.tokens, per_second_, burst_));
  }
  bucket.tokens -= n;
  return absl::OkStatus();
}

void EventRateLimiter::Forget(const std::string& task_id) {
  absl::MutexLock lock(&mu_);
  buckets_.erase(task_id);
}

}  // namespace compressd
