#include "server/store/lease_check.h"

#include <string_view>

#include "absl/strings/str_cat.h"
#include "server/core/job_state.h"

namespace compressd {

absl::Status StaleLease(const TaskRecord& task) {
  return absl::FailedPreconditionError(
      absl::StrCat("lease_token: the lease on task ", task.task_id,
                   " is no longer current (it expired, was re-leased or the job ended)"));
}

absl::Status CheckLeaseHeld(const v1::Job& job, const TaskRecord& task,
                            const std::string& lease_token) {
  if (lease_token.empty() || task.lease_token != lease_token) return StaleLease(task);
  if (job.state() != v1::RUNNING) {
    std::string_view state = JobStateName(job.state());
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job.id(), " is ", absl::string_view(state.data(), state.size()),
                     "; the lease on task ", task.task_id, " has ended"));
  }
  return absl::OkStatus();
}

absl::Status PartGone(const absl::Status& st, const std::string& part_id) {
  if (!absl::IsNotFound(st)) return st;
  return absl::FailedPreconditionError(absl::StrCat("lease_token: the lease on part ", part_id,
                                                    " has ended (its job is no longer running)"));
}

}  // namespace compressd
