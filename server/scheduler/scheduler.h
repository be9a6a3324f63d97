// Hands work to compress-worker processes: the one object behind
// WorkerService's scheduling calls. A thin facade over the classes that do
// the work, each in its own file:
//   WorkerRegistry  registered workers, liveness, what each holds
//   LeaseWaiters    LeaseTask long-polls and waking them when work arrives
//   TaskLeases      leases of jobs' tasks and the lease rules (task_leases.h)
//   PartLeases      fan-out parts of running jobs
// It routes each call to them (a task id naming a part goes to PartLeases),
// hands idle workers parts of running jobs before queued jobs, and runs the
// background thread (lease expiry, long-poll timeouts, worker liveness)
// between Start() and Stop().
//
// Dependencies: server/scheduler/ builds on server/store/, server/core/ and
// server/metrics/, and never includes server/jobs/. JobService reaches the
// scheduler only through WorkNotifier (server/core/work_notifier.h).
//
// Thread-safe. LeaseTask callbacks never run under a lock of the scheduler.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "compressd/v1/worker.pb.h"
#include "server/core/event_bus.h"
#include "server/core/work_notifier.h"
#include "server/metrics/server_metrics.h"
#include "server/scheduler/lease_waiters.h"
#include "server/scheduler/part_leases.h"
#include "server/scheduler/scheduler_options.h"
#include "server/scheduler/task_leases.h"
#include "server/scheduler/worker_registry.h"
#include "server/store/store.h"

namespace compressd {

class Scheduler : public WorkNotifier, private TaskSource {
 public:
  Scheduler(Store& store, EventBus& bus, ServerMetrics& metrics, SchedulerOptions options);
  ~Scheduler() override;  // calls Stop()

  void Start();
  // Stops the background thread and answers every pending LeaseTask with no
  // task; later LeaseTask calls get no task either (the server is draining).
  void Stop();

  // `key_id`: the API key the worker authenticated with; its id carries it.
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& req,
                                                            const std::string& key_id = "");

  // Long-poll. `done` is called exactly once: right away if a task is
  // available (or on error), otherwise from another thread when a task
  // becomes available or wait_ms passes (then with an empty response).
  // Returns a handle for CancelWait, or 0 if `done` was already called.
  // NOT_FOUND for an unregistered worker_id.
  using LeaseCallback = LeaseWaiters::LeaseCallback;
  int64_t LeaseTask(const v1::LeaseTaskRequest& req, LeaseCallback done);
  // The caller went away: `done` is called with CANCELLED if it was not yet called.
  // A task leased for it in the meantime is put back in the queue.
  void CancelWait(int64_t handle);
  // A job or part became QUEUED: wake one waiting LeaseTask.
  void NotifyWorkAvailable() override;

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
  static constexpr int kMaxPartFailures = PartLeases::kMaxPartFailures;
  absl::StatusOr<v1::SubmitPartsResponse> SubmitParts(const v1::SubmitPartsRequest& req);
  absl::StatusOr<v1::ClaimPartResponse> ClaimPart(const v1::ClaimPartRequest& req);
  absl::StatusOr<v1::GetPartsResponse> GetParts(const v1::GetPartsRequest& req);

  // The registered workers and what each holds (the dashboard's workers page).
  std::vector<WorkerView> Workers() { return workers_.Snapshot(); }

  // One pass of the background work (lease expiry, timeouts); for tests.
  void Tick();

 private:
  // TaskSource of the long-polls: parts of running jobs first (they finish
  // work already started), then the oldest queued job.
  absl::StatusOr<std::optional<v1::Task>> TryLease(const std::string& worker_id) override;
  void ReturnLease(const v1::Task& task, const std::string& worker_id) override;
  void Run();  // the background thread

  const SchedulerOptions options_;
  WorkerRegistry workers_;
  PartLeases parts_;
  TaskLeases tasks_;
  LeaseWaiters waiters_;

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace compressd
