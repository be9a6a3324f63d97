// Leases job tasks to workers and keeps the lease rules:
// - LeaseTask takes the oldest QUEUED job, moves it to RUNNING (attempts+1)
//   and hands out (task_id, lease_token) valid for lease_ttl_ms.
// - Heartbeat extends the lease and records progress; it answers cancel=true
//   once the job was cancelled.
// - A lease that expires (worker killed, partitioned) puts the job back to
//   QUEUED if attempts < max_attempts, else FAILED with the reason.
// - Every call naming a lease that is no longer current is FAILED_PRECONDITION,
//   so a stale worker can never overwrite a newer attempt's result.
// Thread-safe. Owns one background thread (lease expiry, long-poll timeouts,
// worker liveness) between Start() and Stop().
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "compressd/v1/worker.pb.h"
#include "server/jobs/event_bus.h"
#include "server/metrics/server_metrics.h"
#include "server/store/blob_store.h"
#include "server/store/store.h"

namespace compressd {

struct SchedulerOptions {
  int64_t lease_ttl_ms = 15000;
  int64_t heartbeat_interval_ms = 2000;
  int64_t worker_timeout_ms = 30000;  // a worker unheard of this long is disconnected
  int64_t max_wait_ms = 30000;        // cap on LeaseTask long-poll
  int64_t tick_ms = 200;              // background thread period
};

class Scheduler {
 public:
  Scheduler(Store& store, EventBus& bus, ServerMetrics& metrics, SchedulerOptions options);
  ~Scheduler();  // calls Stop()

  void Start();
  // Stops the background thread and answers every pending LeaseTask with no task.
  void Stop();

  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& req);

  // Long-poll. `done` is called exactly once: right away if a task is
  // available (or on error), otherwise from another thread when a task
  // becomes available or wait_ms passes (then with an empty response).
  // Returns a handle for CancelWait.
  using LeaseCallback = std::function<void(absl::StatusOr<v1::LeaseTaskResponse>)>;
  int64_t LeaseTask(const v1::LeaseTaskRequest& req, LeaseCallback done);
  // The caller went away: `done` is called with CANCELLED if it was not yet called.
  void CancelWait(int64_t handle);
  // A job became QUEUED: wake one waiting LeaseTask.
  void NotifyWorkAvailable();

  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& req);
  absl::Status ReportEvents(const v1::ReportEventsRequest& req);
  // FAILED_PRECONDITION unless (task_id, lease_token) is the current lease of a RUNNING job.
  absl::Status CheckLease(const std::string& task_id, const std::string& lease_token);
  // Records an uploaded output file (blob already committed) as an artifact of the task's job.
  absl::StatusOr<v1::Artifact> AddArtifact(const v1::UploadArtifactHeader& header);
  absl::Status CompleteTask(const v1::CompleteTaskRequest& req);
  absl::Status FailTask(const v1::FailTaskRequest& req);

  // One pass of the background work (lease expiry, timeouts); for tests.
  void Tick();

 private:
  // Implementation-defined members (waiters, workers, thread) go here.
  struct Waiter {
    std::string worker_id;
    int64_t deadline_ms;
    LeaseCallback done;
  };
  struct WorkerInfo {
    v1::RegisterWorkerRequest info;
    int64_t last_seen_ms = 0;
    std::string task_id;  // empty when idle
  };
  absl::StatusOr<std::optional<v1::Task>> TryLease(const std::string& worker_id);
  void ServeWaiters();

  Store& store_;
  EventBus& bus_;
  ServerMetrics& metrics_;
  const SchedulerOptions options_;

  absl::Mutex mu_;
  int64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, WorkerInfo> workers_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace compressd
