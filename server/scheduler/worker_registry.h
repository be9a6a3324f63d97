// The workers the scheduler knows: each registered worker, when it was last
// heard from and which task or part it holds (none when idle), and the
// compressd_workers_connected / compressd_workers_busy gauges. Kept in
// memory only: after a server restart a worker is re-admitted when it
// heartbeats a lease it still holds (SetTask with `admit`). A worker unheard
// of for worker_timeout_ms is dropped on the next ExpireSilent unless one of
// its LeaseTask long-polls is pending. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/device_need.h"
#include "compressd/v1/worker.pb.h"
#include "server/metrics/server_metrics.h"
#include "server/scheduler/scheduler_options.h"

namespace compressd {

// The key id a worker id was issued to ("" for an id without one).
std::string WorkerKeyId(const std::string& worker_id);

// One worker as the dashboard shows it.
struct WorkerView {
  std::string worker_id;
  v1::RegisterWorkerRequest info;
  int64_t registered_ms = 0;  // when it registered (or was re-admitted)
  int64_t last_seen_ms = 0;
  std::string task_id;        // empty when idle
  int64_t task_since_ms = 0;  // when it took task_id
  int64_t busy_ms = 0;        // time spent holding tasks since it registered, up to now
};

class WorkerRegistry {
 public:
  WorkerRegistry(ServerMetrics& metrics, SchedulerOptions options);

  // Adds a worker described by `info`, authenticated with API key `key_id`;
  // returns its new id, "wkr-<key_id>-<16 hex>" (WorkerKeyId reads it back).
  std::string Register(const v1::RegisterWorkerRequest& info, const std::string& key_id = "");
  // NOT_FOUND unless `worker_id` is registered; records that it was heard from.
  absl::Status Touch(const std::string& worker_id);
  // Records what a worker holds ("" when idle); re-admits an unknown worker if `admit`.
  void SetTask(const std::string& worker_id, const std::string& task_id, bool admit = false);
  // Clears a worker's task only if it is still `task_id`.
  void Release(const std::string& worker_id, const std::string& task_id);
  // Records that the workers in `heard` were heard from at `now` (their
  // long-poll just ended), then drops every worker unheard of for longer than
  // worker_timeout_ms unless it is in `waiting`.
  void ExpireSilent(int64_t now, const std::vector<std::string>& heard,
                    const std::set<std::string>& waiting);
  // How many workers are registered.
  size_t Count();
  // The memory budget `worker_id` registered with; 0 when unknown (not
  // registered, re-admitted after a server restart, or an older worker).
  uint64_t MemoryOf(const std::string& worker_id);
  // Records a known worker's memory budget (LeaseTaskRequest.memory_bytes),
  // e.g. one re-admitted after a server restart without its registration.
  void SetMemory(const std::string& worker_id, uint64_t memory_bytes);
  // The kind of `worker_id` (its registered device; kCpu when unknown).
  DeviceNeed KindOf(const std::string& worker_id);
  // How many registered workers of `kind` there are, and how many of them hold nothing.
  size_t CountOf(DeviceNeed kind);
  size_t IdleOf(DeviceNeed kind);
  // Every registered worker, by id.
  std::vector<WorkerView> Snapshot();

 private:
  struct Worker {
    v1::RegisterWorkerRequest info;
    int64_t last_seen_ms = 0;
    std::string task_id;  // empty when idle
    int64_t registered_ms = 0;
    int64_t task_since_ms = 0;
    int64_t busy_ms = 0;  // of tasks already released
  };
  // Records that `w` now holds `task_id` ("" idle), accumulating busy time.
  void SwitchTaskLocked(Worker& w, const std::string& task_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void UpdateGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ServerMetrics& metrics_;
  const SchedulerOptions options_;

  absl::Mutex mu_;
  std::map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compressd
