// A background pass (blob garbage collection, blob scrub) run on its own
// thread: the first `first_delay_ms` after Start(), then every `interval_ms`,
// until Stop(). A pass in progress is not interrupted; Stop() waits for it.
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace compressd {

class PeriodicPass {
 public:
  // interval_ms <= 0: Start() is a no-op.
  PeriodicPass(int64_t interval_ms, int64_t first_delay_ms, std::function<void()> pass);
  ~PeriodicPass();  // Stop()
  PeriodicPass(const PeriodicPass&) = delete;
  PeriodicPass& operator=(const PeriodicPass&) = delete;

  void Start();
  void Stop();
  // For a pass that wants to end early (a long scrub): whether Stop() came.
  bool stopping() const;

 private:
  void Loop();

  const int64_t interval_ms_;
  const int64_t first_delay_ms_;
  const std::function<void()> pass_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace compressd
