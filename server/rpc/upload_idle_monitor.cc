#include "server/rpc/upload_idle_monitor.h"

#include <algorithm>
#include <chrono>

#include "absl/time/time.h"

namespace compressd {
namespace {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

UploadIdleMonitor::UploadIdleMonitor(int64_t idle_timeout_ms)
    : idle_timeout_ms_(std::max<int64_t>(idle_timeout_ms, 1)), thread_([this] { Run(); }) {}

UploadIdleMonitor::~UploadIdleMonitor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

int64_t UploadIdleMonitor::Register(grpc::CallbackServerContext* ctx) {
  absl::MutexLock lock(&mu_);
  const int64_t id = next_id_++;
  streams_[id] = Stream{ctx, SteadyMs(), false};
  return id;
}

void UploadIdleMonitor::Touch(int64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(id);
  if (it != streams_.end()) it->second.last_ms = SteadyMs();
}

void UploadIdleMonitor::Unregister(int64_t id) {
  absl::MutexLock lock(&mu_);
  streams_.erase(id);
}

bool UploadIdleMonitor::TimedOut(int64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(id);
  return it != streams_.end() && it->second.cancelled;
}

int64_t UploadIdleMonitor::timed_out() const {
  absl::MutexLock lock(&mu_);
  return timed_out_;
}

void UploadIdleMonitor::Run() {
  const absl::Duration tick =
      absl::Milliseconds(std::clamp<int64_t>(idle_timeout_ms_ / 4, 10, 1000));
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), tick);
    const int64_t now = SteadyMs();
    for (auto& [id, stream] : streams_) {
      if (stream.cancelled || now - stream.last_ms < idle_timeout_ms_) continue;
      // Under mu_: the stream cannot be unregistered (and its context freed) meanwhile.
      stream.ctx->TryCancel();
      stream.cancelled = true;
      ++timed_out_;
    }
  }
}

}  // namespace compressd
