#include "server/rpc/stream_limiter.h"

#include "absl/strings/str_cat.h"

namespace compressd {

absl::StatusOr<std::shared_ptr<void>> StreamLimiter::Acquire(const std::string& key_id,
                                                             const char* what) {
  {
    absl::MutexLock lock(&mu_);
    int& open = open_[key_id];
    if (max_per_key_ > 0 && open >= max_per_key_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("limit max_watch_streams_per_key: key ", key_id, " already holds ", open,
                       " open ", what, " streams (limit ", max_per_key_, "); close some first"));
    }
    ++open;
  }
  return std::shared_ptr<void>(nullptr, [this, key_id](void*) { Release(key_id); });
}

void StreamLimiter::Release(const std::string& key_id) {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(key_id);
  if (it != open_.end() && --it->second == 0) open_.erase(it);
}

}  // namespace compressd
