// The LeaseTask long-polls. A worker asking for work gets a task right away
// when one is queued; otherwise its call waits here (a Waiter) until work
// becomes available (NotifyWorkAvailable, then Serve hands it to the oldest
// waiter), its wait_ms passes (Expire answers it with no task), its caller
// goes away (CancelWait) or the server stops (Stop). The work itself comes
// from a TaskSource (the Scheduler). Each `done` callback is called exactly
// once (for the waiters Stop returns, by Stop's caller), never under this
// class's lock.
//
// Thread-safe. A waiter being served (a task being leased for it outside the
// lock) is answered only by the thread serving it; CancelWait, Stop and
// Expire leave it to that thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "compressd/v1/worker.pb.h"
#include "server/scheduler/scheduler_options.h"
#include "server/scheduler/worker_registry.h"

namespace compressd {

// Where LeaseTask calls get their work. Implementations are thread-safe:
// LeaseWaiters calls them from any thread, holding none of its locks.
class TaskSource {
 public:
  virtual ~TaskSource() = default;
  // Leases a task to `worker_id`; nullopt when nothing is queued.
  virtual absl::StatusOr<std::optional<v1::Task>> TryLease(const std::string& worker_id) = 0;
  // Puts back a task leased for a waiter that went away before receiving it.
  virtual void ReturnLease(const v1::Task& task, const std::string& worker_id) = 0;
};

class LeaseWaiters {
 public:
  using LeaseCallback = std::function<void(absl::StatusOr<v1::LeaseTaskResponse>)>;

  LeaseWaiters(WorkerRegistry& workers, TaskSource& source, SchedulerOptions options);

  // See Scheduler::LeaseTask.
  int64_t LeaseTask(const v1::LeaseTaskRequest& req, LeaseCallback done);
  // See Scheduler::CancelWait.
  void CancelWait(int64_t handle);
  // Work was queued: lets a LeaseTask in progress notice it, then serves the waiters.
  void NotifyWorkAvailable();
  // Hands queued work to waiting LeaseTask calls, oldest waiter first.
  void Serve();
  // Answers long-polls past their deadline (with no task) and drops silent
  // workers that have none pending (WorkerRegistry::ExpireSilent).
  void Expire(int64_t now);
  // From now on LeaseTask answers with no task at once. Removes the waiters
  // not being served (one being served gets what Serve leased for it) and
  // returns their callbacks, for the caller to answer with no task.
  std::vector<LeaseCallback> Stop();

 private:
  struct Waiter {
    std::string worker_id;
    int64_t deadline_ms = 0;
    LeaseCallback done;
    bool serving = false;    // Serve is leasing a task for it right now
    bool cancelled = false;  // CancelWait arrived while serving
  };

  WorkerRegistry& workers_;
  TaskSource& source_;
  const SchedulerOptions options_;

  absl::Mutex mu_;
  int64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  // Bumped by NotifyWorkAvailable (and when a lease is returned) so LeaseTask
  // can notice work that was queued between its lease attempt and
  // registering as a waiter.
  uint64_t work_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace compressd
