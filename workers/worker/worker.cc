#include "workers/worker/worker.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_macros.h"

namespace compressd {
namespace {

std::string DefaultName() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "localhost");
  return absl::StrCat(host, ":", ::getpid());
}

}  // namespace

Worker::Worker(WorkerOptions options, WorkerClient& client)
    : options_(std::move(options)),
      client_(client),
      reporter_(client_, options_),
      inputs_(client_, (std::filesystem::path(options_.cache_dir) / "blobs").string(),
              options_.blobs),
      tasks_(options_, client_, inputs_, reporter_, stop_),
      parts_(options_, client_, inputs_, reporter_, stop_) {}

void Worker::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
  }
  stop_.Stop();  // the running task stops and hands its lease back
  client_.CancelLeaseTask();
}

bool Worker::shutting_down() const {
  absl::MutexLock lock(&mu_);
  return shutdown_;
}

WorkerStats Worker::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool Worker::WaitForStats(const std::function<bool(const WorkerStats&)>& pred,
                          int64_t timeout_ms) const {
  absl::MutexLock lock(&mu_);
  auto holds = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pred(stats_); };
  return mu_.AwaitWithTimeout(absl::Condition(&holds), absl::Milliseconds(timeout_ms));
}

void Worker::CountRpcFailure() {
  absl::MutexLock lock(&mu_);
  ++stats_.rpc_failures;
}

void Worker::Count(TaskOutcome outcome, bool part) {
  absl::MutexLock lock(&mu_);
  switch (outcome) {
    case TaskOutcome::kCompleted:
      ++(part ? stats_.parts_completed : stats_.completed);
      break;
    case TaskOutcome::kFailed:
      ++stats_.failed;
      break;
    case TaskOutcome::kStopped:
      ++stats_.cancelled;
      break;
  }
}

bool Worker::SleepUnlessShutdown(int64_t ms) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&shutdown_), absl::Milliseconds(ms));
  return !shutdown_;
}

uint64_t Worker::MemoryBudget() const {
  return options_.memory_bytes ? options_.memory_bytes : engine::DefaultMemoryBudgetBytes();
}

absl::Status Worker::Register() {
  v1::RegisterWorkerRequest req;
  req.set_name(options_.name.empty() ? DefaultName() : options_.name);
  req.set_device(options_.device);
  req.set_device_name(options_.device_name);
  req.set_compute_capability(options_.compute_capability);
  req.set_device_memory_bytes(options_.device_memory_bytes);
  req.set_threads(options_.threads);
  req.set_memory_bytes(MemoryBudget());
  ASSIGN_OR_RETURN(v1::RegisterWorkerResponse resp, client_.RegisterWorker(req));
  registration_.worker_id = resp.worker_id();
  if (resp.heartbeat_interval_ms() > 0) {
    registration_.heartbeat_interval_ms = resp.heartbeat_interval_ms();
  }
  std::fprintf(stderr, "compress-worker: registered as %s (%s)\n", registration_.worker_id.c_str(),
               req.name().c_str());
  return absl::OkStatus();
}

absl::Status Worker::Run() {
  int64_t backoff = options_.initial_backoff_ms;
  while (!shutting_down()) {
    // Scratch space of workers killed mid-task (a readdir when there is none).
    if (const int swept = SweepDeadTaskDirs(options_.cache_dir); swept > 0) {
      std::fprintf(stderr, "compress-worker: removed %d task directories of dead workers\n", swept);
    }
    if (registration_.worker_id.empty()) {
      absl::Status st = Register();
      if (!st.ok()) {
        std::fprintf(stderr, "compress-worker: register failed: %s\n", st.ToString().c_str());
        CountRpcFailure();
        SleepUnlessShutdown(backoff);
        backoff = std::min(backoff * 2, options_.max_backoff_ms);
        continue;
      }
    }
    v1::LeaseTaskRequest req;
    req.set_worker_id(registration_.worker_id);
    req.set_wait_ms(options_.lease_wait_ms);
    req.set_memory_bytes(MemoryBudget());
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<v1::LeaseTaskResponse> resp = client_.LeaseTask(req);
    // A task leased just as Shutdown() came is handed back at once (LeaseScope).
    if (shutting_down() && !(resp.ok() && resp->has_task())) break;
    if (!resp.ok()) {
      if (resp.status().code() == absl::StatusCode::kNotFound) {
        registration_.worker_id.clear();  // the server forgot us (restart): register again
        continue;
      }
      std::fprintf(stderr, "compress-worker: LeaseTask failed: %s\n",
                   resp.status().ToString().c_str());
      CountRpcFailure();
      SleepUnlessShutdown(backoff);
      backoff = std::min(backoff * 2, options_.max_backoff_ms);
      continue;
    }
    backoff = options_.initial_backoff_ms;
    if (resp->has_task()) {
      Dispatch(resp->task());
    } else if (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(100)) {
      SleepUnlessShutdown(100);  // a server answering at once: do not spin
    }
  }
  std::fprintf(stderr, "compress-worker: shut down\n");
  return absl::OkStatus();
}

void Worker::Dispatch(const v1::Task& task) {
  const bool part = task.has_part();
  if (!part) parts_.Release();  // another job's parts are done with: free its model
  Count(part ? parts_.Run(task, registration_) : tasks_.Run(task, registration_), part);
}

}  // namespace compressd
