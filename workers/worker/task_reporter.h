// How a leased task or part ends on the server: CompleteTask or FailTask,
// retried while the server is unavailable, and the retry policy every other
// call of a lease (checkpoints, fan-out, uploads) shares. Thread-safe
// (WorkerClient is).
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "compressd/v1/worker.pb.h"
#include "workers/worker/server_client.h"
#include "workers/worker/worker_options.h"

namespace compressd {

// How a leased task or part ended (WorkerStats counts them).
enum class TaskOutcome {
  kCompleted,  // CompleteTask sent (even if reporting it failed)
  kFailed,     // FailTask sent (even if reporting it failed)
  kStopped,    // the job was cancelled or the lease lost: nothing reported
};

class TaskReporter {
 public:
  // Runs a call, retrying as WithRetry does (ServerCheckpointStore::Retry).
  using RetryFn = std::function<absl::Status(const std::function<absl::Status()>& call)>;

  // `options` (finish_retry_ms and the backoffs) must outlive this.
  TaskReporter(WorkerClient& client, const WorkerOptions& options);

  // Runs `call`, retrying UNAVAILABLE / DEADLINE_EXCEEDED with exponential
  // backoff for finish_retry_ms; returns the last answer.
  absl::Status WithRetry(const std::function<absl::Status()>& call) const;
  // WithRetry as a function for the lease's server-backed stores.
  RetryFn retry() const;

  // CompleteTask with the job's summary (empty for a part), retried.
  absl::Status Complete(const v1::Task& task, const std::string& summary_json) const;
  // FailTask with `error` (valid UTF-8, at most kMaxErrorTextBytes), retried.
  // Not retryable by the server for errors no retry can fix (the model or
  // recipe is bad, an input is corrupted): INVALID_ARGUMENT, UNIMPLEMENTED,
  // FAILED_PRECONDITION, DATA_LOSS.
  absl::Status Fail(const v1::Task& task, const absl::Status& error) const;

 private:
  WorkerClient& client_;
  const WorkerOptions& options_;
};

// "" when `reported` is OK, else " (reporting it failed: <status>)", for the
// worker's log line about the task.
std::string ReportingNote(const absl::Status& reported);

}  // namespace compressd
