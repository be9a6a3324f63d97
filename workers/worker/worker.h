// The compress-worker process loop: register with compressd, lease tasks
// (long poll) and hand each to its runner: a job's own task to TaskRunner
// (fetch, run, upload, complete or fail), a part of a job to PartExecutor
// (task_runner.h, part_executor.h; both hold their lease in a LeaseScope).
//
// Server unavailable: retried with exponential backoff, forever; a server
// that no longer knows this worker (NOT_FOUND) gets a fresh RegisterWorker.
// A cancelled job or a lost lease stops the task without reporting a result.
// Task failures are reported with retryable=false for INVALID_ARGUMENT,
// UNIMPLEMENTED and FAILED_PRECONDITION from the model or recipe, and
// DATA_LOSS for a corrupted input (task_reporter.h).
//
// Run() is called from one thread; Shutdown() may be called from any other
// thread: the current task stops at its next cancellation check and hands its
// lease back (queued again, the attempt not counted), and Run() returns.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "compressd/v1/worker.pb.h"
#include "workers/worker/lease_scope.h"
#include "workers/worker/part_executor.h"
#include "workers/worker/server_client.h"
#include "workers/worker/task_inputs.h"
#include "workers/worker/task_reporter.h"
#include "workers/worker/task_runner.h"
#include "workers/worker/worker_options.h"

namespace compressd {

struct WorkerStats {
  int64_t completed = 0;
  int64_t failed = 0;
  int64_t cancelled = 0;        // job cancelled or lease lost
  int64_t parts_completed = 0;  // parts of other workers' jobs (fan-out)
  int64_t rpc_failures = 0;     // RegisterWorker / LeaseTask errors (each retried)
};

class Worker {
 public:
  Worker(WorkerOptions options, WorkerClient& client);

  // Serves tasks until Shutdown(). Returns OK after a graceful stop.
  absl::Status Run();
  void Shutdown();
  WorkerStats stats() const;
  // Waits until `pred(stats())` holds; false on timeout. For tests and supervisors.
  bool WaitForStats(const std::function<bool(const WorkerStats&)>& pred, int64_t timeout_ms) const;

 private:
  absl::Status Register();
  // --memory-budget, or the machine's default: registered and sent with each LeaseTask.
  uint64_t MemoryBudget() const;
  // Runs a leased task or part and counts how it ended.
  void Dispatch(const v1::Task& task);
  void Count(TaskOutcome outcome, bool part);
  // Returns false if Shutdown() was called (possibly during the wait).
  bool SleepUnlessShutdown(int64_t ms);
  bool shutting_down() const;
  void CountRpcFailure();

  const WorkerOptions options_;
  WorkerClient& client_;
  const TaskReporter reporter_;
  InputFetcher inputs_;
  ShutdownSignal stop_;  // before the runners, which hold it
  TaskRunner tasks_;
  PartExecutor parts_;
  Registration registration_;  // only touched by the Run() thread
  mutable absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  WorkerStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compressd
