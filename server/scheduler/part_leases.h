// Fan-out parts (worker.proto Part). A job's task (the coordinator) submits
// parts of its work; idle workers lease them ahead of queued jobs (TryLease);
// the coordinator claims the ones still queued so it never waits idle, and
// polls their states. Results travel as checkpoints of the job, so a part's
// lease only guards who may compute it.
//
// Submit, Claim and Get are called with the job's task lease:
// INVALID_ARGUMENT for a part's lease or a bad part, FAILED_PRECONDITION for
// a lease that is not current. A part whose lease expires or fails goes back
// to the queue until kMaxPartFailures, then is FAILED. Parts live in the Store
// (store_parts.cc) only while their job is RUNNING; a call under the lease of
// a part that is gone is FAILED_PRECONDITION (PartGone, lease_check.h).
// What each worker holds is recorded in the WorkerRegistry; a part put back
// in the queue is announced to the WorkNotifier.
//
// Thread-safe: no state of its own besides the references it was given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compressd/v1/worker.pb.h"
#include "server/core/work_notifier.h"
#include "server/scheduler/scheduler_options.h"
#include "server/scheduler/worker_registry.h"
#include "server/store/store.h"

namespace compressd {

class PartLeases {
 public:
  static constexpr int kMaxPartFailures = 3;

  PartLeases(Store& store, WorkerRegistry& workers, WorkNotifier& notifier,
             SchedulerOptions options);

  // The calls of the job's task (see the Scheduler's of the same names).
  absl::StatusOr<v1::SubmitPartsResponse> Submit(const v1::SubmitPartsRequest& req);
  absl::StatusOr<v1::ClaimPartResponse> Claim(const v1::ClaimPartRequest& req);
  absl::StatusOr<v1::GetPartsResponse> Get(const v1::GetPartsRequest& req);

  // Leases the oldest queued part of any running job; nullopt when none.
  absl::StatusOr<std::optional<v1::Task>> TryLease(const std::string& worker_id);
  // Puts back a part leased for a LeaseTask caller that went away before
  // receiving it.
  void ReturnLease(const v1::Task& task, const std::string& worker_id);

  // The part-lease forms of the Scheduler's Heartbeat, CompleteTask and
  // FailTask. For Heartbeat, `known_worker` says whether the WorkerRegistry
  // knew the worker; one it did not know is re-admitted.
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& req,
                                                  bool known_worker);
  absl::Status Complete(const v1::CompleteTaskRequest& req);
  absl::Status Fail(const v1::FailTaskRequest& req);

  // Puts parts whose lease expired at or before `now` back in the queue, or
  // fails them (FailLease).
  void ExpireLeases(int64_t now);

 private:
  // A failed or expired part lease: back to the queue or, after
  // kMaxPartFailures (or a non-retryable error), FAILED. `expired_at` > 0:
  // only if the lease expired at or before it. `release`: the worker handed
  // the part back while stopping: queued again, not counted as a failure.
  absl::Status FailLease(const std::string& part_id, const std::string& lease_token,
                         const std::string& error, bool retryable, int64_t expired_at,
                         bool release = false);
  // The job whose task lease (not a part's) `task_id`/`lease_token` hold.
  absl::StatusOr<std::string> CoordinatorJob(const std::string& task_id,
                                             const std::string& lease_token);

  Store& store_;
  WorkerRegistry& workers_;
  WorkNotifier& notifier_;
  const SchedulerOptions options_;
};

}  // namespace compressd
