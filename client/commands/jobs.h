// `compressctl jobs ...`: submit, get, list, cancel (watch is in watch.h).
#pragma once

#include <chrono>
#include <ostream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/cli/args.h"
#include "client/cli/connection.h"
#include "client/cli/context.h"
#include "compressd/v1/compressd.pb.h"

namespace compressd::client {

// Builds the request from `jobs submit` flags. The recipe file is parsed,
// given its defaults and validated here, so a bad recipe fails before anything
// is sent. request_id defaults to a fresh random id.
absl::StatusOr<v1::SubmitJobRequest> BuildSubmitRequest(const Invocation& invocation);

struct RetryPolicy {
  int max_retries = 3;
  std::chrono::milliseconds initial_backoff{500};  // doubles per retry
};

// SubmitJob, retried on UNAVAILABLE / DEADLINE_EXCEEDED with the same
// request (so the same request_id: the server returns the job it created).
// Retries are reported on `err`.
absl::StatusOr<v1::Job> SubmitWithRetry(Connection& connection, const v1::SubmitJobRequest& request,
                                        const RetryPolicy& policy, std::ostream& err);

absl::Status JobsSubmit(CommandContext& context);
absl::Status JobsGet(CommandContext& context);
absl::Status JobsList(CommandContext& context);
absl::Status JobsCancel(CommandContext& context);
absl::Status JobsDelete(CommandContext& context);

}  // namespace compressd::client
