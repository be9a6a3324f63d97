// Caps the streams one API key holds open at once (WatchJob): a client that
// opens thousands cannot exhaust the server's threads and memory for
// everyone. Thread-safe; must outlive every hold it hands out.
#pragma once

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace compressd {

class StreamLimiter {
 public:
  explicit StreamLimiter(int max_per_key) : max_per_key_(max_per_key) {}

  // A hold on one of `key_id`'s streams, released when the last copy is
  // dropped; RESOURCE_EXHAUSTED naming the limit when the key holds
  // max_per_key already (max_per_key <= 0: unlimited).
  absl::StatusOr<std::shared_ptr<void>> Acquire(const std::string& key_id, const char* what);

 private:
  void Release(const std::string& key_id);

  const int max_per_key_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, int> open_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compressd
