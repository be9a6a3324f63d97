// The compress-worker process loop: register with compressd, lease tasks
// (long poll), and for each task fetch the model (and the dataset files its
// recipe's evaluation names) into the blob cache, run the recipe with
// heartbeats and batched events, upload the output files and complete (or
// fail) the task.
//
// Server unavailable: retried with exponential backoff, forever; a server
// that no longer knows this worker (NOT_FOUND) gets a fresh RegisterWorker.
// A cancelled job or a lost lease stops the task without reporting a result.
// Task failures are reported with retryable=false for INVALID_ARGUMENT,
// UNIMPLEMENTED and FAILED_PRECONDITION from the model or recipe.
//
// Run() is called from one thread; Shutdown() may be called from any other
// thread and makes Run() return after the current task.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "compressd/v1/worker.pb.h"
#include "workers/engine/model_job.h"
#include "workers/worker/blob_cache.h"
#include "workers/worker/event_reporter.h"
#include "workers/worker/server_client.h"

namespace compressd {

struct WorkerOptions {
  std::string cache_dir;        // blobs/ and tasks/ live here
  std::string name;             // default hostname:pid
  std::string device = "cpu";
  int threads = 1;
  uint64_t memory_bytes = 0;    // default: physical memory (sysconf)
  int64_t lease_wait_ms = 10000;
  int64_t initial_backoff_ms = 250;
  int64_t max_backoff_ms = 10000;
  int64_t finish_retry_ms = 60000;  // how long CompleteTask/FailTask/uploads retry UNAVAILABLE
  // Fault injection for demos and failure drills (--slow-ms-per-layer): pause
  // this long after each compressed layer, so a job can be watched, cancelled
  // or have its worker killed mid-run. 0 in production.
  int64_t slow_ms_per_layer = 0;
  EventReporterOptions events;
  BlobCacheOptions blobs;
};

struct WorkerStats {
  int64_t completed = 0;
  int64_t failed = 0;
  int64_t cancelled = 0;  // job cancelled or lease lost
  int64_t parts_completed = 0;  // parts of other workers' jobs (fan-out)
  int64_t rpc_failures = 0;  // RegisterWorker / LeaseTask errors (each retried)
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
  void RunTask(const v1::Task& task);
  // <cache_dir>/tasks/<task_id>; INVALID_ARGUMENT for an unsafe task id.
  absl::StatusOr<std::string> TaskDir(const v1::Task& task) const;
  // Fetch, run, upload. Sets *lease_lost when a server call says the lease is gone.
  absl::StatusOr<std::string> ExecuteTask(const v1::Task& task, const std::string& task_dir,
                                          EventReporter& events, CancelToken& cancel,
                                          std::atomic<bool>& lease_lost);
  absl::Status FetchModel(const v1::Task& task, const std::string& model_dir,
                          EventSink& events, const CancelToken& cancel);
  // Fetches the dataset files the recipe's evaluation names into
  // <datasets_dir>/<dataset_id>/<file>; returns (dataset_id, file) -> local path.
  // INVALID_ARGUMENT naming the recipe field for a dataset the task lacks or a
  // file the dataset lacks.
  absl::StatusOr<std::map<std::pair<std::string, std::string>, std::string>> FetchDatasets(
      const v1::Task& task, const std::string& datasets_dir, EventSink& events,
      const CancelToken& cancel);
  // A part of a job (task.part()): computed with the job's part runner
  // (kept for the job's next parts), its result stored as the job's
  // checkpoint task.part().result(); events are not reported (the job's
  // own task reports the job's).
  void RunPart(const v1::Task& task);
  absl::StatusOr<std::string> ExecutePart(const v1::Task& task, const std::string& task_dir,
                                          EventSink& events, CancelToken& cancel,
                                          std::atomic<bool>& lease_lost);
  absl::Status UploadOutputs(const v1::Task& task, const std::string& out_dir,
                             EventSink& events, const CancelToken& cancel);
  void FinishTask(const v1::Task& task, const absl::StatusOr<std::string>& result);
  // Retries UNAVAILABLE / DEADLINE_EXCEEDED with backoff for finish_retry_ms.
  absl::Status WithRetry(const std::function<absl::Status()>& call);
  // Returns false if Shutdown() was called (possibly during the wait).
  bool SleepUnlessShutdown(int64_t ms);
  bool shutting_down() const;
  void CountRpcFailure();

  const WorkerOptions options_;
  WorkerClient& client_;
  BlobCache blobs_;
  std::string worker_id_;  // only touched by the Run() thread
  // The part runner of the job whose parts this worker last computed, keyed
  // by "<job_id>#<attempt>" (Run() thread only).
  std::string part_runner_key_;
  std::unique_ptr<ModelPartRunner> part_runner_;
  int64_t heartbeat_interval_ms_ = 2000;
  mutable absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  WorkerStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compressd
