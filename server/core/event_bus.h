// In-process notification that a job has new persisted events. Subscribers
// (WatchJob streams) then read the events from the Store; the bus carries
// only the job id and latest sequence, never the events themselves, so a
// missed notification loses nothing. Thread-safe. Callbacks run on the
// publishing thread while the bus's lock is held: they must not block and
// must not call back into the bus. Once Unsubscribe returns, the callback is
// neither running nor called again, so its captures may be destroyed.
// JobService and the scheduler publish; the gRPC edge subscribes. Part of
// server/core/ (includes nothing else from server/).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace compressd {

class EventBus {
 public:
  using Callback = std::function<void(int64_t last_sequence)>;
  // Returns a token for Unsubscribe.
  int64_t Subscribe(const std::string& job_id, Callback cb);
  void Unsubscribe(int64_t token);
  void Publish(const std::string& job_id, int64_t last_sequence);
  // Every subscriber, with INT64_MAX: "read again" (after notifications from
  // other replicas may have been missed: Store::ListenForChanges).
  void PublishAll();
  // The server is draining (SIGTERM): closed() turns true and every
  // subscriber is called, so idle streams end now and their clients
  // reconnect (to another replica), instead of at the shutdown deadline.
  void Close();
  bool closed() const { return closed_.load(); }

 private:
  struct Sub {
    std::string job_id;
    Callback cb;
  };
  std::atomic<bool> closed_{false};
  absl::Mutex mu_;
  int64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, Sub> subs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compressd
