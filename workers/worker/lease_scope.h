// What one leased task or part holds while it runs, and how its end is
// decided. Both the task flow (task_runner.h) and the part flow
// (part_executor.h) open one LeaseScope per lease:
//
//   - the CancelToken the run checks;
//   - the lease-lost flag, set by LoseLease(): every server answer that says
//     the lease is gone (a FAILED_PRECONDITION from events, checkpoints,
//     fan-out or uploads) calls it, and it cancels the run;
//   - the heartbeats (Heartbeater), which cancel the run when the job was
//     cancelled or the lease lost;
//   - the task's checkpoints on the server, carrying the lease, and the
//     levels database among the model's shared checkpoints;
//   - the task directory <cache_dir>/tasks/<task_id>.a<attempt>.p<pid> (one
//     per attempt and process, so a worker still on an older attempt never
//     shares it),
//     cleared of a crashed run's leftovers by Start() and removed by Close().
//
// After the run, stopped() says whether the task ends without a result (job
// cancelled, lease lost, by any route, or the worker shutting down: then
// EndStopped() hands the lease back) or is reported finished. Close()
// (or the destructor) stops the heartbeats after that report, so the lease
// is kept alive while it is retried.
//
// Owned by one thread (the worker's Run() thread); LoseLease(), cancel() and
// the stores may be used from the run's and the reporters' threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "compressd/v1/worker.pb.h"
#include "workers/engine/runtime/checkpoint.h"
#include "workers/engine/runtime/run_context.h"
#include "workers/worker/heartbeater.h"
#include "workers/worker/server_checkpoints.h"
#include "workers/worker/server_client.h"
#include "workers/worker/task_reporter.h"

namespace compressd {

// What RegisterWorker gave this worker; every lease's heartbeats carry it.
struct Registration {
  std::string worker_id;  // empty: not registered
  int64_t heartbeat_interval_ms = 2000;
};

// The worker's stop (SIGTERM, Worker::Shutdown): Stop() cancels the run of
// the lease that is open, if any (a LeaseScope attaches its CancelToken for
// its lifetime), and every later one at once. Thread-safe.
class ShutdownSignal {
 public:
  void Stop();
  bool stopped() const;
  // `token` is cancelled by Stop(), or now if Stop() came already. One at a time.
  void Attach(engine::CancelToken* token);
  void Detach();

 private:
  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  engine::CancelToken* token_ ABSL_GUARDED_BY(mu_) = nullptr;
};

class LeaseScope {
 public:
  // `task`, `reporter` and `shutdown` must outlive the scope. Nothing runs
  // before Start().
  LeaseScope(WorkerClient& client, const TaskReporter& reporter, const v1::Task& task,
             const Registration& registration, const std::string& cache_dir,
             ShutdownSignal& shutdown);
  ~LeaseScope();  // calls Close()
  LeaseScope(const LeaseScope&) = delete;
  LeaseScope& operator=(const LeaseScope&) = delete;

  // Starts the heartbeats, every registration.heartbeat_interval_ms with the
  // task's latest `progress` (called from the heartbeat thread until Close(),
  // so what it reads must outlive that), then clears the task directory of a
  // crashed run's leftovers. Once.
  void Start(Heartbeater::ProgressFn progress);

  engine::CancelToken& cancel() { return cancel_; }
  // The lease is gone: remember it and cancel the run. Thread-safe.
  void LoseLease();
  // LoseLease as a callback, for the reporters and server-backed stores.
  std::function<void()> on_lease_lost() {
    return [this] { LoseLease(); };
  }

  // <cache_dir>/tasks/<task_id>.a<attempt>.p<pid>; INVALID_ARGUMENT for an unsafe task id.
  const absl::StatusOr<std::string>& dir() const { return dir_; }
  // The checkpoints of the task's job on the server (a lost lease there calls
  // LoseLease), and where an evopress stage keeps its levels database.
  ServerCheckpointStore& checkpoints() { return checkpoints_; }
  engine::CheckpointStore& levels_db() { return levels_db_; }

  // True when the task must end without a result: the run was cancelled
  // (job cancelled, worker shutting down) or the lease lost, seen by any route.
  bool stopped() const;
  // For a stopped run: hands the lease back to the server when the worker is
  // shutting down and the lease is still ours (FailTask with release: the
  // task is queued again, the attempt not counted; one try, so a stopping
  // worker never waits on an absent server: the lease then expires as after
  // a crash). Returns why the run stopped, for the log.
  std::string EndStopped();
  // Whether the heartbeats learned that the job was cancelled (else a stop
  // is a lost lease).
  bool job_cancelled() const;

  // Stops the heartbeats and removes the task directory. Idempotent.
  void Close();

 private:
  WorkerClient& client_;
  const v1::Task& task_;
  const Registration registration_;
  ShutdownSignal& shutdown_;
  engine::CancelToken cancel_;
  std::atomic<bool> lease_lost_{false};
  const absl::StatusOr<std::string> dir_;
  ServerCheckpointStore checkpoints_;
  engine::PrefixedCheckpointStore levels_db_;
  std::unique_ptr<Heartbeater> heartbeats_;
};

// Removes the task directories under <cache_dir>/tasks whose process is gone
// (a worker killed mid-task leaves its attempt's scratch files; several
// workers may share a cache, so only dead owners' directories go). Returns
// how many it removed.
int SweepDeadTaskDirs(const std::string& cache_dir);

}  // namespace compressd
