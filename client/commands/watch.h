// `compressctl jobs watch ID`: stream a job's events until it ends,
// reconnecting (from the last sequence seen, so nothing is missed or printed
// twice) when the stream breaks with UNAVAILABLE.
#pragma once

#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "client/cli/context.h"

namespace compressd::client {

struct WatchOptions {
  int max_reconnects = 6;                          // consecutive failures without a new event
  std::chrono::milliseconds initial_backoff{500};  // doubles per failure, capped
  std::chrono::milliseconds max_backoff{8000};
};

// Prints event lines on stdout (JSON lines with --json) and a progress bar on
// a terminal's stderr. OK only if the job SUCCEEDED; ABORTED for FAILED and
// CANCELLED for CANCELLED, with the job's error in the message.
absl::Status WatchUntilDone(CommandContext& context, const std::string& job_id,
                            const WatchOptions& options);

absl::Status JobsWatch(CommandContext& context);

}  // namespace compressd::client
