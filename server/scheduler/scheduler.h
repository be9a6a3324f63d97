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
// worker liveness) between Start() and Stop(). LeaseTask callbacks never run
// under the scheduler's lock. The lease-bound calls live in leases.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
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
  // Wall clock in milliseconds; tests substitute a fake. Empty means NowMs().
  std::function<int64_t()> clock;
};

// FAILED_PRECONDITION unless `lease_token` is the current lease of `task` and
// `job` is RUNNING: the lease rule of every call a worker makes about a task,
// for use inside a Store transaction (Store::PutCheckpoint).
absl::Status CheckLeaseHeld(const v1::Job& job, const TaskRecord& task,
                            const std::string& lease_token);

// The job's model and datasets into a leased task (for parts.cc and leases.cc).
absl::Status LoadTaskInputs(Store& store, const v1::Job& job, v1::Task* task);

class Scheduler {
 public:
  Scheduler(Store& store, EventBus& bus, ServerMetrics& metrics, SchedulerOptions options);
  ~Scheduler();  // calls Stop()

  void Start();
  // Stops the background thread and answers every pending LeaseTask with no
  // task; later LeaseTask calls get no task either (the server is draining).
  void Stop();

  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& req);

  // Long-poll. `done` is called exactly once: right away if a task is
  // available (or on error), otherwise from another thread when a task
  // becomes available or wait_ms passes (then with an empty response).
  // Returns a handle for CancelWait, or 0 if `done` was already called.
  // NOT_FOUND for an unregistered worker_id.
  using LeaseCallback = std::function<void(absl::StatusOr<v1::LeaseTaskResponse>)>;
  int64_t LeaseTask(const v1::LeaseTaskRequest& req, LeaseCallback done);
  // The caller went away: `done` is called with CANCELLED if it was not yet called.
  // A task leased for it in the meantime is put back in the queue.
  void CancelWait(int64_t handle);
  // A job became QUEUED: wake one waiting LeaseTask.
  void NotifyWorkAvailable();

  // A worker the server does not know (e.g. after a server restart) is
  // re-admitted when it heartbeats a lease it still holds.
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& req);
  absl::Status ReportEvents(const v1::ReportEventsRequest& req);
  // FAILED_PRECONDITION unless (task_id, lease_token) is the current lease of a RUNNING job.
  absl::Status CheckLease(const std::string& task_id, const std::string& lease_token);
  // Records an uploaded output file (blob already committed) as an artifact of the task's job.
  // An earlier artifact of the job with the same path is replaced.
  absl::StatusOr<v1::Artifact> AddArtifact(const v1::UploadArtifactHeader& header);
  absl::Status CompleteTask(const v1::CompleteTaskRequest& req);
  absl::Status FailTask(const v1::FailTaskRequest& req);

  // Fan-out (worker.proto Part), called with the job's task lease (its
  // coordinator): INVALID_ARGUMENT for a part's lease or a bad part,
  // FAILED_PRECONDITION for a lease that is not current. Idle workers lease
  // queued parts before queued jobs; a part whose lease expires or fails goes
  // back to the queue until kMaxPartFailures, then is FAILED.
  static constexpr int kMaxPartFailures = 3;
  absl::StatusOr<v1::SubmitPartsResponse> SubmitParts(const v1::SubmitPartsRequest& req);
  absl::StatusOr<v1::ClaimPartResponse> ClaimPart(const v1::ClaimPartRequest& req);
  absl::StatusOr<v1::GetPartsResponse> GetParts(const v1::GetPartsRequest& req);

  // One pass of the background work (lease expiry, timeouts); for tests.
  void Tick();
  // Sets the jobs-by-state and queue-depth gauges from the Store.
  void RefreshJobMetrics();

 private:
  struct Waiter {
    std::string worker_id;
    int64_t deadline_ms = 0;
    LeaseCallback done;
    bool serving = false;    // ServeWaiters is leasing a task for it right now
    bool cancelled = false;  // CancelWait arrived while serving
  };
  struct WorkerInfo {
    v1::RegisterWorkerRequest info;
    int64_t last_seen_ms = 0;
    std::string task_id;  // empty when idle
  };

  int64_t Now() const;
  void Run();  // the background thread
  // Leases the oldest QUEUED job to `worker_id`; nullopt when none is queued.
  absl::StatusOr<std::optional<v1::Task>> TryLease(const std::string& worker_id);
  // Leases the oldest queued part of any running job; nullopt when none.
  absl::StatusOr<std::optional<v1::Task>> TryLeasePart(const std::string& worker_id);
  // The part-lease forms of Heartbeat / CompleteTask / FailTask (parts.cc).
  absl::StatusOr<v1::HeartbeatResponse> PartHeartbeat(const v1::HeartbeatRequest& req,
                                                      bool known_worker);
  absl::Status CompletePart(const v1::CompleteTaskRequest& req);
  // A failed or expired part lease: back to the queue or, after
  // kMaxPartFailures (or a non-retryable error), FAILED. `expired_at` > 0:
  // only if the lease expired at or before it.
  absl::Status FailPart(const std::string& part_id, const std::string& lease_token,
                        const std::string& error, bool retryable, int64_t expired_at);
  void ExpireParts(int64_t now);
  // The job whose task lease (not a part's) `task_id`/`lease_token` hold.
  absl::StatusOr<std::string> CoordinatorJob(const std::string& task_id,
                                             const std::string& lease_token);
  // Hands queued jobs to waiting LeaseTask calls, oldest waiter first.
  void ServeWaiters();
  // Fails a queued job whose model or dataset vanished (only possible by
  // editing the database), so it cannot block the queue.
  void FailUnleasable(const std::string& job_id, const std::string& reason);
  // Puts back a task leased for a waiter that went away before receiving it.
  void ReturnLease(const v1::Task& task, const std::string& worker_id);
  // Requeues or fails RUNNING jobs whose lease expired at or before `now`.
  void ExpireLeases(int64_t now);
  // Answers long-polls past their deadline and drops silent workers.
  void ExpireWaitersAndWorkers(int64_t now);
  // NOT_FOUND unless `worker_id` is registered; records that it was heard from.
  absl::Status TouchWorker(const std::string& worker_id);
  // Records what a worker holds ("" when idle); re-admits an unknown worker if `admit`.
  void SetWorkerTask(const std::string& worker_id, const std::string& task_id, bool admit = false);
  // Clears a worker's task only if it is still `task_id`.
  void ReleaseWorker(const std::string& worker_id, const std::string& task_id);
  void UpdateWorkerGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Store& store_;
  EventBus& bus_;
  ServerMetrics& metrics_;
  const SchedulerOptions options_;

  absl::Mutex mu_;
  int64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, WorkerInfo> workers_ ABSL_GUARDED_BY(mu_);
  // Bumped by NotifyWorkAvailable so LeaseTask can notice work that was
  // queued between its lease attempt and registering as a waiter.
  uint64_t work_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace compressd
