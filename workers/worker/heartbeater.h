// Sends a heartbeat for one leased task every interval from its own thread,
// carrying the task's latest progress. A response with cancel=true (the job
// was cancelled) or a FAILED_PRECONDITION error (the lease was lost) sets the
// CancelToken so the engine stops at its next check. Other errors are
// retried at the next beat: the server decides when a lease expires.
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "compressd/v1/worker.pb.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd {

class Heartbeater {
 public:
  using SendFn =
      std::function<absl::StatusOr<v1::HeartbeatResponse>(const v1::HeartbeatRequest&)>;
  using ProgressFn = std::function<v1::Progress()>;

  // `base` names worker, task and lease; progress is filled in per beat.
  Heartbeater(SendFn send, v1::HeartbeatRequest base, int64_t interval_ms, ProgressFn progress,
              engine::CancelToken& cancel);
  ~Heartbeater();  // calls Stop()
  // Stops and joins the thread. Idempotent.
  void Stop();

  bool job_cancelled() const;
  bool lease_lost() const;

 private:
  void Loop();

  const SendFn send_;
  const v1::HeartbeatRequest base_;
  const int64_t interval_ms_;
  const ProgressFn progress_;
  engine::CancelToken& cancel_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool job_cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool lease_lost_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace compressd
