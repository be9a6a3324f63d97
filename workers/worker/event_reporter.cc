#include "workers/worker/event_reporter.h"

#include "absl/time/time.h"
#include "common/utf8.h"

namespace compressd {

EventReporter::EventReporter(SendFn send, std::function<void()> on_lease_lost,
                             EventReporterOptions options)
    : send_(std::move(send)), on_lease_lost_(std::move(on_lease_lost)), options_(options) {
  thread_ = std::thread([this] { Loop(); });
}

EventReporter::~EventReporter() { Stop(); }

namespace {

// The event with its text fields valid UTF-8 and bounded: engine text can
// hold bytes from a malformed model file, which gRPC would refuse to send.
v1::JobEvent Sendable(const v1::JobEvent& event) {
  v1::JobEvent out = event;
  auto fix = [](std::string* s) { *s = ToValidUtf8(*s, kMaxEventTextBytes); };
  if (out.has_log()) fix(out.mutable_log()->mutable_message());
  if (out.has_progress()) {
    fix(out.mutable_progress()->mutable_stage());
    fix(out.mutable_progress()->mutable_message());
  }
  if (out.has_metric()) {
    fix(out.mutable_metric()->mutable_name());
    google::protobuf::Map<std::string, std::string> labels;
    for (const auto& [k, v] : out.metric().labels()) {
      labels[ToValidUtf8(k, kMaxEventTextBytes)] = ToValidUtf8(v, kMaxEventTextBytes);
    }
    *out.mutable_metric()->mutable_labels() = std::move(labels);
  }
  return out;
}

}  // namespace

void EventReporter::Emit(const v1::JobEvent& raw) {
  const v1::JobEvent event = Sendable(raw);
  absl::MutexLock lock(&mu_);
  if (event.has_progress()) latest_ = event.progress();
  if (lease_lost_) return;
  pending_.push_back(event);
  while (pending_.size() > options_.max_buffered) pending_.pop_front();
}

v1::Progress EventReporter::LatestProgress() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

void EventReporter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool EventReporter::SendBatch(std::vector<v1::JobEvent> batch) {
  const absl::Status st = send_(batch);
  if (st.ok()) return true;
  if (st.code() == absl::StatusCode::kFailedPrecondition) {
    {
      absl::MutexLock lock(&mu_);
      lease_lost_ = true;
      pending_.clear();
    }
    on_lease_lost_();
    return true;
  }
  absl::MutexLock lock(&mu_);  // keep them, in order, for the next attempt
  pending_.insert(pending_.begin(), batch.begin(), batch.end());
  while (pending_.size() > options_.max_buffered) pending_.pop_front();
  return false;
}

void EventReporter::Loop() {
  int final_failures = 0;
  bool retrying = false;  // after a failed send, wait the full interval
  while (true) {
    std::vector<v1::JobEvent> batch;
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this, retrying]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || (!retrying && pending_.size() >= options_.max_batch);
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready),
                           absl::Milliseconds(options_.flush_interval_ms));
      stopping = stopping_;
      if (lease_lost_ || (stopping && pending_.empty())) return;
      while (!pending_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    if (batch.empty()) continue;
    retrying = !SendBatch(std::move(batch));
    if (retrying && stopping && ++final_failures >= options_.final_flush_attempts) {
      return;  // the server is unreachable: give up rather than hang the task
    }
  }
}

}  // namespace compressd
