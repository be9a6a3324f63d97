#include "server/core/job_state.h"

#include "absl/strings/str_cat.h"

namespace compressd {

bool IsTerminal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

bool IsLegalTransition(v1::JobState from, v1::JobState to) {
  switch (from) {
    case v1::QUEUED:
      return to == v1::RUNNING || to == v1::CANCELLED;
    case v1::RUNNING:
      return to == v1::SUCCEEDED || to == v1::FAILED || to == v1::QUEUED || to == v1::CANCELLED;
    default:
      return false;
  }
}

absl::Status CheckTransition(v1::JobState from, v1::JobState to) {
  if (IsLegalTransition(from, to)) return absl::OkStatus();
  std::string_view f = JobStateName(from);
  std::string_view t = JobStateName(to);
  return absl::FailedPreconditionError(absl::StrCat("illegal job state transition ",
                                                    absl::string_view(f.data(), f.size()), " -> ",
                                                    absl::string_view(t.data(), t.size())));
}

std::string_view JobStateName(v1::JobState state) {
  switch (state) {
    case v1::QUEUED:
      return "QUEUED";
    case v1::RUNNING:
      return "RUNNING";
    case v1::SUCCEEDED:
      return "SUCCEEDED";
    case v1::FAILED:
      return "FAILED";
    case v1::CANCELLED:
      return "CANCELLED";
    default:
      return "JOB_STATE_UNSPECIFIED";
  }
}

absl::Status ApplyTransition(v1::Job* job, v1::JobState to, const std::string& reason,
                             int64_t now_ms, std::vector<v1::JobEvent>* events) {
  v1::JobState from = job->state();
  if (from != v1::JOB_STATE_UNSPECIFIED || to != v1::QUEUED) {
    absl::Status legal = CheckTransition(from, to);
    if (!legal.ok()) {
      return absl::Status(legal.code(), absl::StrCat("job ", job->id(), ": ", legal.message()));
    }
  }
  job->set_state(to);
  if (to == v1::RUNNING) job->set_start_time_ms(now_ms);
  if (IsTerminal(to)) job->set_end_time_ms(now_ms);
  if (to == v1::FAILED || to == v1::CANCELLED) job->set_error(reason);
  if (to == v1::SUCCEEDED) job->clear_error();
  v1::JobEvent& event = events->emplace_back();
  event.set_time_ms(now_ms);
  v1::StateChange* change = event.mutable_state();
  change->set_from(from);
  change->set_to(to);
  change->set_reason(reason);
  return absl::OkStatus();
}

}  // namespace compressd
