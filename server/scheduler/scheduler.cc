// Scheduler: lifecycle, the background thread and routing to the classes
// that do the work (scheduler.h).
#include "server/scheduler/scheduler.h"

#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/status_macros.h"

namespace compressd {

Scheduler::Scheduler(Store& store, EventBus& bus, ServerMetrics& metrics, SchedulerOptions options)
    : options_(std::move(options)),
      workers_(metrics, options_),
      parts_(store, workers_, *this, options_),
      tasks_(store, bus, metrics, workers_, *this, options_),
      waiters_(workers_, *this, options_) {}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  thread_ = std::thread(&Scheduler::Run, this);
}

void Scheduler::Stop() {
  std::vector<LeaseCallback> pending = waiters_.Stop();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  for (LeaseCallback& done : pending) done(v1::LeaseTaskResponse());
}

void Scheduler::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(options_.tick_ms))) {
        return;
      }
    }
    Tick();
  }
}

void Scheduler::Tick() {
  int64_t now = options_.Now();
  parts_.ExpireLeases(now);
  tasks_.ExpireLeases(now);
  tasks_.MarkDeviceWaits();
  tasks_.MarkQuotaWaits();
  waiters_.Expire(now);
  // A safety net: hand out work whose notification raced with a waiter.
  waiters_.Serve();
}

absl::StatusOr<v1::RegisterWorkerResponse> Scheduler::RegisterWorker(
    const v1::RegisterWorkerRequest& req, const std::string& key_id) {
  v1::RegisterWorkerResponse resp;
  resp.set_worker_id(workers_.Register(req, key_id));
  resp.set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  resp.set_lease_ttl_ms(options_.lease_ttl_ms);
  return resp;
}

int64_t Scheduler::LeaseTask(const v1::LeaseTaskRequest& req, LeaseCallback done) {
  if (req.memory_bytes() > 0) workers_.SetMemory(req.worker_id(), req.memory_bytes());
  return waiters_.LeaseTask(req, std::move(done));
}

void Scheduler::CancelWait(int64_t handle) { waiters_.CancelWait(handle); }

void Scheduler::NotifyWorkAvailable() { waiters_.NotifyWorkAvailable(); }

absl::StatusOr<std::optional<v1::Task>> Scheduler::TryLease(const std::string& worker_id) {
  ASSIGN_OR_RETURN(std::optional<v1::Task> part, parts_.TryLease(worker_id));
  if (part) return part;
  return tasks_.TryLease(worker_id);
}

void Scheduler::ReturnLease(const v1::Task& task, const std::string& worker_id) {
  if (task.has_part()) {
    parts_.ReturnLease(task, worker_id);
  } else {
    tasks_.ReturnLease(task, worker_id);
  }
}

absl::StatusOr<v1::HeartbeatResponse> Scheduler::Heartbeat(const v1::HeartbeatRequest& req) {
  if (req.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  absl::Status known = workers_.Touch(req.worker_id());
  if (req.task_id().empty()) {  // idle worker
    RETURN_IF_ERROR(known);
    return v1::HeartbeatResponse();
  }
  if (IsPartId(req.task_id())) return parts_.Heartbeat(req, known.ok());
  return tasks_.Heartbeat(req, known.ok());
}

absl::Status Scheduler::ReportEvents(const v1::ReportEventsRequest& req) {
  return tasks_.ReportEvents(req);
}

absl::Status Scheduler::CheckLease(const std::string& task_id, const std::string& lease_token) {
  return tasks_.CheckLease(task_id, lease_token);
}

absl::StatusOr<v1::Artifact> Scheduler::AddArtifact(const v1::UploadArtifactHeader& header) {
  return tasks_.AddArtifact(header);
}

absl::Status Scheduler::CompleteTask(const v1::CompleteTaskRequest& req) {
  if (IsPartId(req.task_id())) return parts_.Complete(req);
  return tasks_.Complete(req);
}

absl::Status Scheduler::FailTask(const v1::FailTaskRequest& req) {
  if (IsPartId(req.task_id())) return parts_.Fail(req);
  return tasks_.Fail(req);
}

absl::StatusOr<v1::SubmitPartsResponse> Scheduler::SubmitParts(const v1::SubmitPartsRequest& req) {
  return parts_.Submit(req);
}

absl::StatusOr<v1::ClaimPartResponse> Scheduler::ClaimPart(const v1::ClaimPartRequest& req) {
  return parts_.Claim(req);
}

absl::StatusOr<v1::GetPartsResponse> Scheduler::GetParts(const v1::GetPartsRequest& req) {
  return parts_.Get(req);
}

}  // namespace compressd
