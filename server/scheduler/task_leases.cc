// TaskLeases: leasing jobs' tasks and every call made under such a lease.
#include "server/scheduler/task_leases.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "common/util.h"
#include "server/core/job_state.h"
#include "server/scheduler/task_inputs.h"
#include "server/store/lease_check.h"

namespace compressd {
namespace {

void ClearLease(TaskRecord& task) {
  task.worker_id.clear();
  task.lease_token.clear();
  task.lease_expire_ms = 0;
  task.cancel_requested = false;
}

absl::Status ValidateReportedEvent(const v1::JobEvent& event, int index) {
  switch (event.payload_case()) {
    case v1::JobEvent::kProgress:
    case v1::JobEvent::kLog:
    case v1::JobEvent::kMetric:
      return absl::OkStatus();
    case v1::JobEvent::kState:
      return absl::InvalidArgumentError(
          absl::StrCat("events[", index, "]: workers may not report state changes"));
    default:
      return absl::InvalidArgumentError(absl::StrCat("events[", index, "]: no payload"));
  }
}

}  // namespace

TaskLeases::TaskLeases(Store& store, EventBus& bus, ServerMetrics& metrics, WorkerRegistry& workers,
                       WorkNotifier& notifier, SchedulerOptions options)
    : store_(store),
      bus_(bus),
      metrics_(metrics),
      workers_(workers),
      notifier_(notifier),
      options_(std::move(options)),
      event_rate_(options_.max_events_per_s, options_.max_event_burst) {}

void TaskLeases::RefreshJobMetrics() {
  absl::StatusOr<std::vector<std::pair<v1::JobState, int64_t>>> counts = store_.CountJobsByState();
  if (counts.ok()) metrics_.SetJobCounts(*counts);
}

void TaskLeases::FailUnleasable(const std::string& job_id, const std::string& reason) {
  const int64_t now = options_.Now();
  absl::StatusOr<int64_t> seq = store_.UpdateJob(job_id, [&](v1::Job& job, TaskRecord&,
                                                             std::vector<v1::JobEvent>& events) {
    if (job.state() != v1::QUEUED) return absl::OkStatus();
    job.set_attempts(job.attempts() + 1);
    RETURN_IF_ERROR(ApplyTransition(&job, v1::RUNNING, "leased by the scheduler", now, &events));
    return ApplyTransition(&job, v1::FAILED, absl::StrCat("cannot run: ", reason), now, &events);
  });
  if (seq.ok() && *seq > 0) bus_.Publish(job_id, *seq);
  RefreshJobMetrics();
}

int TaskLeases::DeviceMaskFor(const std::string& worker_id) {
  if (workers_.KindOf(worker_id) == DeviceNeed::kCuda) {
    return DeviceBit(DeviceNeed::kAny) | DeviceBit(DeviceNeed::kCuda);
  }
  if (workers_.IdleOf(DeviceNeed::kCuda) > 0) return DeviceBit(DeviceNeed::kCpu);
  return DeviceBit(DeviceNeed::kAny) | DeviceBit(DeviceNeed::kCpu);
}

void TaskLeases::MarkWaiting(const std::vector<std::string>& ids, const std::string& reason) {
  for (const std::string& id : ids) {
    absl::StatusOr<v1::Job> job = store_.GetJob(id);
    if (!job.ok() || job->waiting_reason() == reason) continue;
    absl::StatusOr<int64_t> seq =
        store_.UpdateJob(id, [&](v1::Job& j, TaskRecord&, std::vector<v1::JobEvent>&) {
          if (j.state() == v1::QUEUED) j.set_waiting_reason(reason);
          return absl::OkStatus();
        });
    if (seq.ok() && *seq > 0) bus_.Publish(id, *seq);
  }
}

void TaskLeases::MarkDeviceWaits() {
  for (DeviceNeed need : {DeviceNeed::kCuda, DeviceNeed::kCpu}) {
    if (workers_.CountOf(need) > 0) continue;
    absl::StatusOr<std::vector<std::string>> ids = store_.QueuedJobsNeeding(need, 100);
    if (!ids.ok()) continue;
    MarkWaiting(*ids,
                need == DeviceNeed::kCuda
                    ? "waiting: needs a CUDA GPU worker (resources.device: cuda); none is "
                      "connected"
                    : "waiting: needs a CPU worker (resources.device: cpu); none is connected");
  }
}

void TaskLeases::MarkQuotaWaits() {
  absl::StatusOr<std::vector<std::pair<std::string, int>>> full = store_.TenantsAtRunningLimit();
  if (!full.ok()) return;
  for (const auto& [tenant, limit] : *full) {
    absl::StatusOr<std::vector<std::string>> ids = store_.QueuedJobsOfTenant(tenant, 100);
    if (!ids.ok()) continue;
    MarkWaiting(*ids,
                absl::StrCat("waiting: tenant \"", tenant, "\" is at its quota max_running_jobs (",
                             limit, " RUNNING); the job starts when one of them ends"));
  }
}

absl::StatusOr<std::optional<v1::Task>> TaskLeases::TryLease(const std::string& worker_id) {
  // Retries when another caller (a second worker, CancelJob) changed the
  // oldest queued job between reading and claiming it.
  const uint64_t memory = workers_.MemoryOf(worker_id);
  const int devices = DeviceMaskFor(worker_id);
  for (int tries = 0; tries < 16; ++tries) {
    ASSIGN_OR_RETURN(std::optional<std::string> job_id, store_.OldestQueuedJob(memory, devices));
    if (!job_id) return std::optional<v1::Task>();
    ASSIGN_OR_RETURN(v1::Job queued, store_.GetJob(*job_id));
    v1::Task task;
    absl::Status inputs = LoadTaskInputs(store_, queued, &task);
    if (absl::IsNotFound(inputs)) {  // cannot happen through the API; never block the queue
      FailUnleasable(*job_id, std::string(inputs.message()));
      continue;
    }
    RETURN_IF_ERROR(inputs);
    const int64_t now = options_.Now();
    absl::StatusOr<int64_t> seq = store_.UpdateJob(
        *job_id, [&](v1::Job& job, TaskRecord& rec, std::vector<v1::JobEvent>& events) {
          if (job.state() != v1::QUEUED) return absl::AbortedError("no longer queued");
          job.set_attempts(job.attempts() + 1);
          RETURN_IF_ERROR(ApplyTransition(&job, v1::RUNNING,
                                          absl::StrCat("leased by worker ", worker_id, ", attempt ",
                                                       job.attempts(), " of ", job.max_attempts()),
                                          now, &events));
          job.clear_progress();
          job.clear_waiting_reason();
          job.clear_artifacts();  // a new attempt produces its own outputs
          rec.worker_id = worker_id;
          rec.lease_token = absl::StrCat("lease-", RandomHex(16));
          rec.lease_expire_ms = now + options_.lease_ttl_ms;
          rec.cancel_requested = false;
          task.set_task_id(rec.task_id);
          task.set_lease_token(rec.lease_token);
          task.set_job_id(job.id());
          task.set_attempt(job.attempts());
          *task.mutable_recipe() = job.recipe();
          task.set_lease_ttl_ms(options_.lease_ttl_ms);
          return absl::OkStatus();
        });
    if (absl::IsAborted(seq.status())) continue;
    if (!seq.ok()) return seq.status();
    metrics_.task_attempts().Increment();
    workers_.SetTask(worker_id, task.task_id());
    bus_.Publish(task.job_id(), *seq);
    RefreshJobMetrics();
    return std::optional<v1::Task>(std::move(task));
  }
  return absl::UnavailableError("LeaseTask: too much contention for queued jobs; retry");
}

void TaskLeases::ReturnLease(const v1::Task& leased, const std::string& worker_id) {
  const int64_t now = options_.Now();
  absl::StatusOr<int64_t> seq = store_.UpdateJob(
      leased.job_id(), [&](v1::Job& job, TaskRecord& rec, std::vector<v1::JobEvent>& events) {
        if (rec.lease_token != leased.lease_token() || job.state() != v1::RUNNING) {
          return absl::OkStatus();
        }
        // The attempt never reached a worker, so it does not count.
        job.set_attempts(job.attempts() - 1);
        ClearLease(rec);
        return ApplyTransition(&job, v1::QUEUED, "lease returned: the worker went away", now,
                               &events);
      });
  workers_.Release(worker_id, leased.task_id());
  if (seq.ok() && *seq > 0) bus_.Publish(leased.job_id(), *seq);
  RefreshJobMetrics();
}

absl::StatusOr<v1::HeartbeatResponse> TaskLeases::Heartbeat(const v1::HeartbeatRequest& req,
                                                            bool known_worker) {
  ASSIGN_OR_RETURN(TaskRecord found, store_.GetTask(req.task_id()));
  const int64_t now = options_.Now();
  v1::HeartbeatResponse resp;
  ASSIGN_OR_RETURN(int64_t seq,
                   store_.UpdateJob(found.job_id, [&](v1::Job& job, TaskRecord& rec,
                                                      std::vector<v1::JobEvent>& events) {
                     if (rec.worker_id != req.worker_id() || rec.lease_token != req.lease_token()) {
                       return StaleLease(rec);
                     }
                     if (job.state() == v1::CANCELLED) {  // not extended; the worker stops
                       resp.set_cancel(true);
                       resp.set_lease_expire_ms(rec.lease_expire_ms);
                       return absl::OkStatus();
                     }
                     RETURN_IF_ERROR(CheckLeaseHeld(job, rec, req.lease_token()));
                     rec.lease_expire_ms = now + options_.lease_ttl_ms;
                     resp.set_lease_expire_ms(rec.lease_expire_ms);
                     if (req.has_progress() &&
                         req.progress().SerializeAsString() != job.progress().SerializeAsString()) {
                       *job.mutable_progress() = req.progress();
                       v1::JobEvent& event = events.emplace_back();
                       event.set_time_ms(now);
                       *event.mutable_progress() = req.progress();
                     }
                     return absl::OkStatus();
                   }));
  // The lease proves who the worker is, so one unknown here (a restarted
  // server) is admitted again.
  workers_.SetTask(req.worker_id(), resp.cancel() ? "" : req.task_id(), /*admit=*/!known_worker);
  if (seq > 0) bus_.Publish(found.job_id, seq);
  return resp;
}

absl::Status TaskLeases::ReportEvents(const v1::ReportEventsRequest& req) {
  if (IsPartId(req.task_id())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task_id: ", req.task_id(), " is a part; its job's task reports the job's events"));
  }
  for (int i = 0; i < req.events_size(); ++i) {
    RETURN_IF_ERROR(ValidateReportedEvent(req.events(i), i));
  }
  ASSIGN_OR_RETURN(TaskRecord found, store_.GetTask(req.task_id()));
  const int64_t now = options_.Now();
  RETURN_IF_ERROR(event_rate_.Take(req.task_id(), req.events_size(), now));
  ASSIGN_OR_RETURN(int64_t seq,
                   store_.UpdateJob(found.job_id, [&](v1::Job& job, TaskRecord& rec,
                                                      std::vector<v1::JobEvent>& events) {
                     RETURN_IF_ERROR(CheckLeaseHeld(job, rec, req.lease_token()));
                     for (const v1::JobEvent& reported : req.events()) {
                       v1::JobEvent& event = events.emplace_back(reported);
                       event.set_sequence(0);
                       if (event.time_ms() == 0) event.set_time_ms(now);
                       if (event.has_progress()) *job.mutable_progress() = event.progress();
                     }
                     return absl::OkStatus();
                   }));
  if (seq > 0) bus_.Publish(found.job_id, seq);
  return absl::OkStatus();
}

absl::Status TaskLeases::CheckLease(const std::string& task_id, const std::string& lease_token) {
  if (IsPartId(task_id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task_id: ", task_id, " is a part; only its job's task uploads the job's outputs"));
  }
  ASSIGN_OR_RETURN(TaskRecord task, store_.GetTask(task_id));
  ASSIGN_OR_RETURN(v1::Job job, store_.GetJob(task.job_id));
  return CheckLeaseHeld(job, task, lease_token);
}

absl::StatusOr<v1::Artifact> TaskLeases::AddArtifact(const v1::UploadArtifactHeader& header) {
  RETURN_IF_ERROR(ValidateRelativePath(header.path(), "header.path"));
  if (!IsSha256Hex(header.sha256())) {
    return absl::InvalidArgumentError(absl::StrCat("header.sha256: \"", header.sha256(),
                                                   "\" is not 64 lowercase hex characters"));
  }
  ASSIGN_OR_RETURN(TaskRecord found, store_.GetTask(header.task_id()));
  v1::Artifact artifact;
  artifact.set_id(NewId("art-"));
  artifact.set_job_id(found.job_id);
  artifact.set_path(header.path());
  artifact.set_size(header.size());
  artifact.set_sha256(header.sha256());
  RETURN_IF_ERROR(store_
                      .UpdateJob(found.job_id,
                                 [&](v1::Job& job, TaskRecord& rec, std::vector<v1::JobEvent>&) {
                                   RETURN_IF_ERROR(CheckLeaseHeld(job, rec, header.lease_token()));
                                   // The sha256 was verified against the bytes as they
                                   // arrived (BlobUploadReactor), never taken on trust.
                                   artifact.set_worker_id(rec.worker_id);
                                   auto* list = job.mutable_artifacts();
                                   for (int i = list->size() - 1; i >= 0; --i) {
                                     if (list->Get(i).path() == header.path()) {
                                       list->DeleteSubrange(i, 1);
                                     }
                                   }
                                   *job.add_artifacts() = artifact;
                                   return absl::OkStatus();
                                 })
                      .status());
  return artifact;
}

absl::Status TaskLeases::Complete(const v1::CompleteTaskRequest& req) {
  event_rate_.Forget(req.task_id());
  ASSIGN_OR_RETURN(TaskRecord found, store_.GetTask(req.task_id()));
  const int64_t now = options_.Now();
  ASSIGN_OR_RETURN(int64_t seq,
                   store_.UpdateJob(found.job_id, [&](v1::Job& job, TaskRecord& rec,
                                                      std::vector<v1::JobEvent>& events) {
                     RETURN_IF_ERROR(CheckLeaseHeld(job, rec, req.lease_token()));
                     std::string reason = absl::StrCat("completed by worker ", rec.worker_id);
                     RETURN_IF_ERROR(ApplyTransition(&job, v1::SUCCEEDED, reason, now, &events));
                     job.set_summary_json(req.summary_json());
                     ClearLease(rec);
                     return absl::OkStatus();
                   }));
  workers_.Release(found.worker_id, found.task_id);
  bus_.Publish(found.job_id, seq);
  RefreshJobMetrics();
  return absl::OkStatus();
}

absl::Status TaskLeases::Fail(const v1::FailTaskRequest& req) {
  event_rate_.Forget(req.task_id());
  ASSIGN_OR_RETURN(TaskRecord found, store_.GetTask(req.task_id()));
  const int64_t now = options_.Now();
  const std::string error = req.error().empty()
                                ? std::string("the worker reported a failure without a message")
                                : ToValidUtf8(req.error(), kMaxErrorTextBytes);
  bool requeued = false;
  // A worker that refused the job as too large for its memory: the job waits
  // for a larger one, unless this worker registered with enough (it would
  // lease the job again: an ordinary failure then).
  const uint64_t needed = req.memory_needed_bytes();
  const bool too_large = needed > 0 && workers_.MemoryOf(found.worker_id) < needed;
  ASSIGN_OR_RETURN(
      int64_t seq, store_.UpdateJob(found.job_id, [&](v1::Job& job, TaskRecord& rec,
                                                      std::vector<v1::JobEvent>& events) {
        RETURN_IF_ERROR(CheckLeaseHeld(job, rec, req.lease_token()));
        if (too_large && !req.release()) {
          job.set_attempts(job.attempts() - 1);
          job.set_memory_needed_bytes(needed);
          job.set_waiting_reason(absl::StrCat(
              "needs an estimated ", FormatBytes(needed),
              " of memory; waiting for a worker registered with at least that much (worker ",
              rec.worker_id, " refused it: ", error, ")"));
          ClearLease(rec);
          requeued = true;
          return ApplyTransition(&job, v1::QUEUED, job.waiting_reason(), now, &events);
        }
        if (req.release()) {
          // The worker is stopping and handed the task back: not an attempt.
          job.set_attempts(job.attempts() - 1);
          ClearLease(rec);
          requeued = true;
          return ApplyTransition(
              &job, v1::QUEUED,
              absl::StrCat("lease handed back by worker ", rec.worker_id, ": ", error), now,
              &events);
        }
        requeued = req.retryable() && job.attempts() < job.max_attempts();
        RETURN_IF_ERROR(
            ApplyTransition(&job, requeued ? v1::QUEUED : v1::FAILED, error, now, &events));
        ClearLease(rec);
        return absl::OkStatus();
      }));
  workers_.Release(found.worker_id, found.task_id);
  bus_.Publish(found.job_id, seq);
  RefreshJobMetrics();
  if (requeued) notifier_.NotifyWorkAvailable();
  return absl::OkStatus();
}

void TaskLeases::ExpireLeases(int64_t now) {
  absl::StatusOr<std::vector<TaskRecord>> expired = store_.ExpiredLeases(now);
  if (!expired.ok()) return;  // retried on the next tick
  bool requeued_any = false;
  for (const TaskRecord& lease : *expired) {
    bool ended = false;
    bool requeued = false;
    absl::StatusOr<int64_t> seq = store_.UpdateJob(
        lease.job_id, [&](v1::Job& job, TaskRecord& rec, std::vector<v1::JobEvent>& events) {
          if (rec.lease_token != lease.lease_token || rec.lease_expire_ms > now) {
            return absl::OkStatus();  // renewed or replaced since it was read
          }
          ended = true;
          ClearLease(rec);
          if (job.state() != v1::RUNNING) return absl::OkStatus();  // e.g. cancelled
          requeued = job.attempts() < job.max_attempts();
          std::string reason =
              requeued ? absl::StrCat("lease expired: worker ", lease.worker_id,
                                      " stopped heartbeating (attempt ", job.attempts(), " of ",
                                      job.max_attempts(), "); requeued")
                       : absl::StrCat("lease expired after ", job.attempts(), " attempts: worker ",
                                      lease.worker_id, " stopped heartbeating");
          return ApplyTransition(&job, requeued ? v1::QUEUED : v1::FAILED, reason, now, &events);
        });
    if (!seq.ok() || !ended) continue;
    workers_.Release(lease.worker_id, lease.task_id);
    if (*seq > 0) bus_.Publish(lease.job_id, *seq);
    requeued_any = requeued_any || requeued;
  }
  if (expired->empty()) return;
  RefreshJobMetrics();
  if (requeued_any) notifier_.NotifyWorkAvailable();
}

}  // namespace compressd
