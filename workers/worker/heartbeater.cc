#include "workers/worker/heartbeater.h"

#include "absl/time/time.h"

namespace compressd {

Heartbeater::Heartbeater(SendFn send, v1::HeartbeatRequest base, int64_t interval_ms,
                         ProgressFn progress, engine::CancelToken& cancel)
    : send_(std::move(send)),
      base_(std::move(base)),
      interval_ms_(interval_ms > 0 ? interval_ms : 1000),
      progress_(std::move(progress)),
      cancel_(cancel) {
  thread_ = std::thread([this] { Loop(); });
}

Heartbeater::~Heartbeater() { Stop(); }

void Heartbeater::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool Heartbeater::job_cancelled() const {
  absl::MutexLock lock(&mu_);
  return job_cancelled_;
}

bool Heartbeater::lease_lost() const {
  absl::MutexLock lock(&mu_);
  return lease_lost_;
}

void Heartbeater::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(interval_ms_));
      if (stopping_ || lease_lost_ || job_cancelled_) return;
    }
    v1::HeartbeatRequest req = base_;
    *req.mutable_progress() = progress_();
    absl::StatusOr<v1::HeartbeatResponse> resp = send_(req);
    if (resp.ok() && resp->cancel()) {
      absl::MutexLock lock(&mu_);
      job_cancelled_ = true;
    } else if (resp.status().code() == absl::StatusCode::kFailedPrecondition) {
      absl::MutexLock lock(&mu_);
      lease_lost_ = true;
    } else {
      continue;
    }
    cancel_.Cancel();
  }
}

}  // namespace compressd
