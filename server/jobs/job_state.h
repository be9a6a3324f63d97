// The job state machine, enforced here and only here.
//
//   QUEUED  -> RUNNING     a worker leased the job's task
//   QUEUED  -> CANCELLED   CancelJob before any worker took it
//   RUNNING -> SUCCEEDED   CompleteTask
//   RUNNING -> FAILED      FailTask (not retryable, or attempts exhausted),
//                          or lease expired with attempts exhausted
//   RUNNING -> QUEUED      lease expired or retryable failure, attempts left
//   RUNNING -> CANCELLED   CancelJob; the worker learns it on its next heartbeat
// SUCCEEDED, FAILED and CANCELLED are terminal.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "compressd/v1/compressd.pb.h"

namespace compressd {

bool IsTerminal(v1::JobState state);
bool IsLegalTransition(v1::JobState from, v1::JobState to);
// FAILED_PRECONDITION naming both states when the transition is illegal.
absl::Status CheckTransition(v1::JobState from, v1::JobState to);
std::string_view JobStateName(v1::JobState state);

}  // namespace compressd
