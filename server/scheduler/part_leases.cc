// PartLeases: fan-out parts, from submission to their end.
#include "server/scheduler/part_leases.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "common/util.h"
#include "server/scheduler/task_inputs.h"
#include "server/store/lease_check.h"

namespace compressd {
namespace {

constexpr size_t kMaxPartPayloadBytes = 16 << 20;
constexpr int kMaxPartsPerSubmit = 4096;

absl::Status StalePart(const PartRecord& part) {
  return absl::FailedPreconditionError(
      absl::StrCat("lease_token: the lease on part ", part.name, " (", part.part_id,
                   ") is no longer current (it expired, was re-leased or the part finished)"));
}

void ClearPartLease(PartRecord& part) {
  part.lease_token.clear();
  part.lease_expire_ms = 0;
}

v1::PartStatus Status(const PartRecord& p) {
  v1::PartStatus s;
  s.set_name(p.name);
  s.set_state(static_cast<v1::PartStatus::State>(p.state));
  s.set_worker_id(p.worker_id);
  s.set_failures(p.failures);
  s.set_error(p.error);
  return s;
}

}  // namespace

PartLeases::PartLeases(Store& store, WorkerRegistry& workers, WorkNotifier& notifier,
                       SchedulerOptions options)
    : store_(store), workers_(workers), notifier_(notifier), options_(std::move(options)) {}

absl::StatusOr<std::string> PartLeases::CoordinatorJob(const std::string& task_id,
                                                       const std::string& lease_token) {
  if (IsPartId(task_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("task_id: ", task_id, " is a part; only its job's task manages parts"));
  }
  ASSIGN_OR_RETURN(TaskRecord task, store_.GetTask(task_id));
  ASSIGN_OR_RETURN(v1::Job job, store_.GetJob(task.job_id));
  RETURN_IF_ERROR(CheckLeaseHeld(job, task, lease_token));
  return task.job_id;
}

absl::StatusOr<v1::SubmitPartsResponse> PartLeases::Submit(const v1::SubmitPartsRequest& req) {
  if (req.parts_size() > kMaxPartsPerSubmit) {
    return absl::InvalidArgumentError(absl::StrCat("parts: ", req.parts_size(), " parts; at most ",
                                                   kMaxPartsPerSubmit, " per call"));
  }
  std::vector<PartRecord> parts;
  for (int i = 0; i < req.parts_size(); ++i) {
    const v1::Part& p = req.parts(i);
    const std::string field = absl::StrCat("parts[", i, "]");
    RETURN_IF_ERROR(ValidatePortableRelativePath(p.name(), field + ".name"));
    if (p.payload().size() > kMaxPartPayloadBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".payload: ", p.payload().size(), " bytes; the limit is ", kMaxPartPayloadBytes));
    }
    PartRecord& rec = parts.emplace_back();
    rec.part_id = NewId("part-");
    rec.name = p.name();
    rec.payload = p.payload();
    rec.result = p.result().empty() ? "parts/" + p.name() : p.result();
    RETURN_IF_ERROR(ValidatePortableRelativePath(rec.result, field + ".result"));
  }
  if (IsPartId(req.task_id())) {
    return absl::InvalidArgumentError(
        absl::StrCat("task_id: ", req.task_id(), " is a part; only its job's task submits parts"));
  }
  ASSIGN_OR_RETURN(TaskRecord task, store_.GetTask(req.task_id()));
  ASSIGN_OR_RETURN(
      int added,
      store_.SubmitParts(task.job_id, parts, [&](const v1::Job& job, const TaskRecord& rec) {
        return CheckLeaseHeld(job, rec, req.lease_token());
      }));
  v1::SubmitPartsResponse resp;
  resp.set_workers(static_cast<int32_t>(std::max<size_t>(workers_.Count(), 1)));
  if (added > 0) notifier_.NotifyWorkAvailable();
  return resp;
}

absl::StatusOr<v1::ClaimPartResponse> PartLeases::Claim(const v1::ClaimPartRequest& req) {
  if (IsPartId(req.task_id())) {
    return absl::InvalidArgumentError(
        absl::StrCat("task_id: ", req.task_id(), " is a part; only its job's task claims parts"));
  }
  ASSIGN_OR_RETURN(TaskRecord task, store_.GetTask(req.task_id()));
  const std::string token = absl::StrCat("lease-", RandomHex(16));
  ASSIGN_OR_RETURN(std::optional<PartRecord> part,
                   store_.LeaseQueuedPart(task.job_id, task.worker_id, token, 0,
                                          [&](const v1::Job& job, const TaskRecord& rec) {
                                            return CheckLeaseHeld(job, rec, req.lease_token());
                                          }));
  v1::ClaimPartResponse resp;
  if (!part) return resp;
  resp.mutable_part()->set_name(part->name);
  resp.mutable_part()->set_payload(part->payload);
  resp.mutable_part()->set_result(part->result);
  resp.set_part_task_id(part->part_id);
  resp.set_part_lease_token(part->lease_token);
  return resp;
}

absl::StatusOr<v1::GetPartsResponse> PartLeases::Get(const v1::GetPartsRequest& req) {
  ASSIGN_OR_RETURN(std::string job_id, CoordinatorJob(req.task_id(), req.lease_token()));
  ASSIGN_OR_RETURN(std::vector<PartRecord> parts,
                   store_.GetParts(job_id, {req.names().begin(), req.names().end()}));
  v1::GetPartsResponse resp;
  for (const PartRecord& p : parts) *resp.add_parts() = Status(p);
  return resp;
}

absl::StatusOr<std::optional<v1::Task>> PartLeases::TryLease(const std::string& worker_id) {
  const int64_t now = options_.Now();
  ASSIGN_OR_RETURN(std::optional<PartRecord> part,
                   store_.LeaseQueuedPart("", worker_id, absl::StrCat("lease-", RandomHex(16)),
                                          now + options_.lease_ttl_ms, nullptr));
  if (!part) return std::optional<v1::Task>();
  absl::StatusOr<v1::Job> job = store_.GetJob(part->job_id);
  v1::Task task;
  absl::Status inputs = job.ok() ? LoadTaskInputs(store_, *job, &task) : job.status();
  if (!inputs.ok()) {  // cannot happen through the API; never block the queue
    (void)FailLease(part->part_id, part->lease_token,
                    absl::StrCat("cannot lease: ", inputs.message()), false, 0);
    return std::optional<v1::Task>();
  }
  task.set_task_id(part->part_id);
  task.set_lease_token(part->lease_token);
  task.set_job_id(part->job_id);
  task.set_attempt(job->attempts());
  *task.mutable_recipe() = job->recipe();
  task.set_lease_ttl_ms(options_.lease_ttl_ms);
  task.mutable_part()->set_name(part->name);
  task.mutable_part()->set_payload(part->payload);
  task.mutable_part()->set_result(part->result);
  workers_.SetTask(worker_id, part->part_id);
  return std::optional<v1::Task>(std::move(task));
}

absl::StatusOr<v1::HeartbeatResponse> PartLeases::Heartbeat(const v1::HeartbeatRequest& req,
                                                            bool known_worker) {
  const int64_t now = options_.Now();
  v1::HeartbeatResponse resp;
  absl::Status st = store_.UpdatePart(req.task_id(), [&](const v1::Job&, PartRecord& part) {
    if (part.worker_id != req.worker_id() || part.lease_token != req.lease_token() ||
        part.state != v1::PartStatus::LEASED) {
      return StalePart(part);
    }
    if (part.lease_expire_ms > 0) part.lease_expire_ms = now + options_.lease_ttl_ms;
    resp.set_lease_expire_ms(part.lease_expire_ms);
    return absl::OkStatus();
  });
  if (absl::IsNotFound(st)) {  // the job left RUNNING (ended, requeued): stop
    resp.set_cancel(true);
    workers_.SetTask(req.worker_id(), "", /*admit=*/!known_worker);
    return resp;
  }
  RETURN_IF_ERROR(st);
  workers_.SetTask(req.worker_id(), req.task_id(), /*admit=*/!known_worker);
  return resp;
}

absl::Status PartLeases::Complete(const v1::CompleteTaskRequest& req) {
  std::string worker;
  absl::Status st = store_.UpdatePart(req.task_id(), [&](const v1::Job&, PartRecord& part) {
    if (req.lease_token().empty() || part.lease_token != req.lease_token() ||
        part.state != v1::PartStatus::LEASED) {
      return StalePart(part);
    }
    part.state = v1::PartStatus::DONE;
    part.error.clear();
    worker = part.worker_id;
    ClearPartLease(part);
    return absl::OkStatus();
  });
  RETURN_IF_ERROR(PartGone(st, req.task_id()));
  workers_.Release(worker, req.task_id());
  return absl::OkStatus();
}

void PartLeases::ReturnLease(const v1::Task& leased, const std::string& worker_id) {
  (void)store_.UpdatePart(leased.task_id(), [&](const v1::Job&, PartRecord& part) {
    if (part.lease_token != leased.lease_token()) return absl::OkStatus();
    part.state = v1::PartStatus::QUEUED;
    part.worker_id.clear();
    part.lease_token.clear();
    part.lease_expire_ms = 0;
    return absl::OkStatus();
  });
  workers_.Release(worker_id, leased.task_id());
}

absl::Status PartLeases::Fail(const v1::FailTaskRequest& req) {
  return FailLease(req.task_id(), req.lease_token(),
                   req.error().empty() ? "the worker reported a failure without a message"
                                       : ToValidUtf8(req.error(), kMaxErrorTextBytes),
                   req.retryable(), 0, req.release());
}

absl::Status PartLeases::FailLease(const std::string& part_id, const std::string& lease_token,
                                   const std::string& error, bool retryable, int64_t expired_at,
                                   bool release) {
  std::string worker;
  bool requeued = false;
  absl::Status st = store_.UpdatePart(part_id, [&](const v1::Job&, PartRecord& part) {
    if (lease_token.empty() || part.lease_token != lease_token ||
        part.state != v1::PartStatus::LEASED) {
      return StalePart(part);
    }
    if (expired_at > 0 && (part.lease_expire_ms == 0 || part.lease_expire_ms > expired_at)) {
      return absl::AbortedError("renewed");
    }
    if (!release) ++part.failures;  // a stopping worker's hand-back is no failure
    part.error = error;
    requeued = release || (retryable && part.failures < kMaxPartFailures);
    part.state = requeued ? v1::PartStatus::QUEUED : v1::PartStatus::FAILED;
    worker = part.worker_id;
    if (requeued) part.worker_id.clear();
    ClearPartLease(part);
    return absl::OkStatus();
  });
  if (absl::IsAborted(st)) return absl::OkStatus();
  RETURN_IF_ERROR(PartGone(st, part_id));
  workers_.Release(worker, part_id);
  if (requeued) notifier_.NotifyWorkAvailable();
  return absl::OkStatus();
}

void PartLeases::ExpireLeases(int64_t now) {
  absl::StatusOr<std::vector<PartRecord>> expired = store_.ExpiredParts(now);
  if (!expired.ok()) return;  // retried on the next tick
  for (const PartRecord& part : *expired) {
    (void)FailLease(part.part_id, part.lease_token,
                    absl::StrCat("lease expired: worker ", part.worker_id, " stopped heartbeating"),
                    /*retryable=*/true, now);
  }
}

}  // namespace compressd
