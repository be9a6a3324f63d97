#include "server/jobs/checkpoint_service.h"

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "server/store/lease_check.h"

namespace compressd {
namespace {

// The parts of a PutCheckpoint header that need no state.
absl::Status ValidateHeader(const v1::PutCheckpointHeader& header) {
  RETURN_IF_ERROR(ValidatePortableRelativePath(header.name(), "header.name"));
  if (!IsSha256Hex(header.sha256())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "header.sha256: expected 64 lowercase hex characters, got \"", header.sha256(), "\""));
  }
  if (header.size() > kMaxCheckpointBytes) {
    return absl::ResourceExhaustedError(absl::StrCat("header.size: checkpoint ", header.name(),
                                                     " is ", header.size(), " bytes; the limit is ",
                                                     kMaxCheckpointBytes));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsSharedCheckpoint(const std::string& name) {
  return name.rfind(kSharedCheckpointPrefix, 0) == 0;
}

absl::StatusOr<v1::Job> CheckpointService::LeasedJob(const std::string& task_id,
                                                     const std::string& lease_token) const {
  ASSIGN_OR_RETURN(TaskRecord task, store_.GetTask(task_id));
  ASSIGN_OR_RETURN(v1::Job job, store_.GetJob(task.job_id));
  RETURN_IF_ERROR(CheckLeaseHeld(job, task, lease_token));
  return job;
}

std::string CheckpointService::Owner(const v1::Job& job, const std::string& name) {
  return IsSharedCheckpoint(name) ? SharedCheckpointOwner(job.model_id()) : job.id();
}

absl::Status CheckpointService::CheckPut(const v1::PutCheckpointHeader& header) const {
  RETURN_IF_ERROR(ValidateHeader(header));
  return LeasedJob(header.task_id(), header.lease_token()).status();
}

absl::StatusOr<v1::PutCheckpointResponse> CheckpointService::RecordPut(
    const v1::PutCheckpointHeader& header) {
  RETURN_IF_ERROR(ValidateHeader(header));
  absl::StatusOr<uint64_t> stored = blobs_.Size(header.sha256());
  if (!stored.ok() || *stored != header.size()) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint ", header.name(), ": blob ",
                                                      header.sha256(), " of ", header.size(),
                                                      " bytes is not in the blob store"));
  }
  ASSIGN_OR_RETURN(TaskRecord task, store_.GetTask(header.task_id()));
  ASSIGN_OR_RETURN(v1::Job job, store_.GetJob(task.job_id));
  CheckpointRecord record;
  record.job_id = Owner(job, header.name());
  record.name = header.name();
  record.sha256 = header.sha256();
  record.size = header.size();
  record.created_ms = NowMs();
  RETURN_IF_ERROR(store_.PutCheckpoint(record, [&](const v1::Job& job, const TaskRecord& current) {
    return CheckLeaseHeld(job, current, header.lease_token());
  }, header.task_id(), task.job_id));
  v1::PutCheckpointResponse response;
  response.set_name(record.name);
  response.set_size(record.size);
  response.set_sha256(record.sha256);
  return response;
}

absl::StatusOr<CheckpointRecord> CheckpointService::Find(
    const v1::GetCheckpointRequest& request) const {
  RETURN_IF_ERROR(ValidatePortableRelativePath(request.name(), "name"));
  ASSIGN_OR_RETURN(v1::Job job, LeasedJob(request.task_id(), request.lease_token()));
  ASSIGN_OR_RETURN(CheckpointRecord record,
                   store_.GetCheckpoint(Owner(job, request.name()), request.name()));
  if (request.offset() > record.size) {
    return absl::OutOfRangeError(absl::StrCat("offset: ", request.offset(),
                                              " is past the end of checkpoint ", request.name(),
                                              " (", record.size, " bytes)"));
  }
  return record;
}

}  // namespace compressd
