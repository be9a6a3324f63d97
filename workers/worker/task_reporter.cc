#include "workers/worker/task_reporter.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/utf8.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd {
namespace {

bool Transient(const absl::Status& st) {
  return st.code() == absl::StatusCode::kUnavailable ||
         st.code() == absl::StatusCode::kDeadlineExceeded;
}

// Errors no retry can fix: the model or recipe is bad, or the server's copy
// of an input is corrupted (DATA_LOSS: it was quarantined).
bool RetryableFailure(const absl::Status& st) {
  return st.code() != absl::StatusCode::kInvalidArgument &&
         st.code() != absl::StatusCode::kUnimplemented &&
         st.code() != absl::StatusCode::kFailedPrecondition &&
         st.code() != absl::StatusCode::kDataLoss;
}

}  // namespace

TaskReporter::TaskReporter(WorkerClient& client, const WorkerOptions& options)
    : client_(client), options_(options) {}

absl::Status TaskReporter::WithRetry(const std::function<absl::Status()>& call) const {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.finish_retry_ms);
  int64_t backoff = options_.initial_backoff_ms;
  while (true) {
    absl::Status st = call();
    if (!Transient(st) || std::chrono::steady_clock::now() >= deadline) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
    backoff = std::min(backoff * 2, options_.max_backoff_ms);
  }
}

TaskReporter::RetryFn TaskReporter::retry() const {
  return [this](const std::function<absl::Status()>& call) { return WithRetry(call); };
}

absl::Status TaskReporter::Complete(const v1::Task& task, const std::string& summary_json) const {
  v1::CompleteTaskRequest req;
  req.set_task_id(task.task_id());
  req.set_lease_token(task.lease_token());
  req.set_summary_json(summary_json);
  return WithRetry([&] { return client_.CompleteTask(req); });
}

absl::Status TaskReporter::Fail(const v1::Task& task, const absl::Status& error) const {
  v1::FailTaskRequest req;
  req.set_task_id(task.task_id());
  req.set_lease_token(task.lease_token());
  req.set_error(ToValidUtf8(error.ToString(absl::StatusToStringMode::kWithNoExtraData),
                            kMaxErrorTextBytes));
  req.set_retryable(RetryableFailure(error));
  req.set_memory_needed_bytes(engine::MemoryNeeded(error));
  return WithRetry([&] { return client_.FailTask(req); });
}

std::string ReportingNote(const absl::Status& reported) {
  return reported.ok() ? "" : absl::StrCat(" (reporting it failed: ", reported.ToString(), ")");
}

}  // namespace compressd
