// Leases of jobs' tasks, and the lease rules:
// - TryLease takes the oldest QUEUED job, moves it to RUNNING (attempts+1)
//   and hands out (task_id, lease_token) valid for lease_ttl_ms.
// - Heartbeat extends the lease and records progress; it answers cancel=true
//   once the job was cancelled.
// - A lease that expires (worker killed, partitioned) puts the job back to
//   QUEUED if attempts < max_attempts, else FAILED with the reason.
// - Every call naming a lease that is no longer current is FAILED_PRECONDITION
//   (CheckLeaseHeld, server/store/lease_check.h), so a stale worker can never
//   overwrite a newer attempt's result.
// Each lease-bound call runs as one Store::UpdateJob transaction that first
// checks the caller still holds the current lease; the job's new events go to
// the EventBus. What each worker holds is recorded in the WorkerRegistry; a
// job put back in the queue is announced to the WorkNotifier.
//
// Thread-safe: no state of its own besides the references it was given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compressd/v1/worker.pb.h"
#include "server/core/event_bus.h"
#include "server/core/work_notifier.h"
#include "server/metrics/server_metrics.h"
#include "server/scheduler/event_rate.h"
#include "server/scheduler/scheduler_options.h"
#include "server/scheduler/worker_registry.h"
#include "server/store/store.h"

namespace compressd {

class TaskLeases {
 public:
  TaskLeases(Store& store, EventBus& bus, ServerMetrics& metrics, WorkerRegistry& workers,
             WorkNotifier& notifier, SchedulerOptions options);

  // Leases the oldest QUEUED job to `worker_id`; nullopt when none is queued.
  absl::StatusOr<std::optional<v1::Task>> TryLease(const std::string& worker_id);
  // Puts back a task leased for a LeaseTask caller that went away before
  // receiving it; the attempt does not count.
  void ReturnLease(const v1::Task& task, const std::string& worker_id);

  // The job-task forms of the Scheduler's calls of the same names. For
  // Heartbeat, `known_worker` says whether the WorkerRegistry knew the worker;
  // one it did not know is re-admitted, the lease proving who it is.
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& req,
                                                  bool known_worker);
  absl::Status ReportEvents(const v1::ReportEventsRequest& req);
  absl::Status CheckLease(const std::string& task_id, const std::string& lease_token);
  absl::StatusOr<v1::Artifact> AddArtifact(const v1::UploadArtifactHeader& header);
  absl::Status Complete(const v1::CompleteTaskRequest& req);
  absl::Status Fail(const v1::FailTaskRequest& req);

  // Requeues or fails RUNNING jobs whose lease expired at or before `now`.
  void ExpireLeases(int64_t now);
  // Gives queued jobs that need a kind of worker none of which is registered
  // (Recipe.resources.device) a waiting_reason saying so; a lease clears it.
  void MarkDeviceWaits();
  // The same for the queued jobs of a tenant at its max_running_jobs quota.
  void MarkQuotaWaits();

 private:
  // Sets `reason` as the waiting_reason of those of `ids` still QUEUED.
  void MarkWaiting(const std::vector<std::string>& ids, const std::string& reason);
  // Fails a queued job whose model or dataset vanished (only possible by
  // editing the database), so it cannot block the queue.
  void FailUnleasable(const std::string& job_id, const std::string& reason);
  // Which jobs `worker_id` may take (common/device_need.h): a GPU worker
  // any or cuda jobs; a CPU worker cpu jobs, and any jobs unless a GPU
  // worker is idle (GPU workers are preferred for jobs that allow both).
  int DeviceMaskFor(const std::string& worker_id);
  // Sets the jobs-by-state and queue-depth gauges from the Store.
  void RefreshJobMetrics();

  Store& store_;
  EventBus& bus_;
  ServerMetrics& metrics_;
  WorkerRegistry& workers_;
  WorkNotifier& notifier_;
  const SchedulerOptions options_;
  EventRateLimiter event_rate_;
};

}  // namespace compressd
