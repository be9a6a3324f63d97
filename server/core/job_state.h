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
//
// server/core/ is the bottom layer of the server: it includes nothing else
// from server/; store/, jobs/, scheduler/ and the network edge build on it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "compressd/v1/compressd.pb.h"

namespace compressd {

bool IsTerminal(v1::JobState state);
bool IsLegalTransition(v1::JobState from, v1::JobState to);
// FAILED_PRECONDITION naming both states when the transition is illegal.
absl::Status CheckTransition(v1::JobState from, v1::JobState to);
std::string_view JobStateName(v1::JobState state);

// The one way job state changes: checks the transition, sets job->state and
// the fields that go with it (RUNNING: start_time_ms; terminal: end_time_ms;
// FAILED/CANCELLED: error = reason; SUCCEEDED: error cleared) and appends
// the StateChange event to *events. Submission is the one transition from
// JOB_STATE_UNSPECIFIED (to QUEUED). FAILED_PRECONDITION (nothing changed)
// if the transition is illegal.
absl::Status ApplyTransition(v1::Job* job, v1::JobState to, const std::string& reason,
                             int64_t now_ms, std::vector<v1::JobEvent>* events);

}  // namespace compressd
