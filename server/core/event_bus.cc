#include "server/core/event_bus.h"

#include <cstdint>
#include <utility>

namespace compressd {

int64_t EventBus::Subscribe(const std::string& job_id, Callback cb) {
  absl::MutexLock lock(&mu_);
  int64_t token = next_token_++;
  subs_.emplace(token, Sub{job_id, std::move(cb)});
  return token;
}

void EventBus::Unsubscribe(int64_t token) {
  absl::MutexLock lock(&mu_);
  subs_.erase(token);
}

void EventBus::Publish(const std::string& job_id, int64_t last_sequence) {
  absl::MutexLock lock(&mu_);
  for (auto& [token, sub] : subs_) {
    if (sub.job_id == job_id) sub.cb(last_sequence);
  }
}

void EventBus::PublishAll() {
  absl::MutexLock lock(&mu_);
  for (auto& [token, sub] : subs_) sub.cb(INT64_MAX);
}

void EventBus::Close() {
  closed_ = true;
  PublishAll();
}

}  // namespace compressd
