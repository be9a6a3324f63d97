// An EventSink that batches a task's events and sends them to the server
// with ReportEvents from its own thread, so the engine never waits on the
// network. It also remembers the latest Progress for heartbeats.
//
// Transient send failures keep the events for the next attempt (at most
// max_buffered, oldest dropped first). FAILED_PRECONDITION means the lease
// was lost: buffered events are dropped and `on_lease_lost` runs once.
// Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd {

struct EventReporterOptions {
  int64_t flush_interval_ms = 500;
  size_t max_batch = 256;
  size_t max_buffered = 10000;
  int final_flush_attempts = 3;  // Stop() gives up on a failing server after these
};

class EventReporter : public engine::EventSink {
 public:
  using SendFn = std::function<absl::Status(const std::vector<v1::JobEvent>&)>;

  EventReporter(SendFn send, std::function<void()> on_lease_lost,
                EventReporterOptions options = {});
  ~EventReporter() override;  // calls Stop()

  void Emit(const v1::JobEvent& event) override;
  v1::Progress LatestProgress() const;
  // Flushes what is buffered and joins the thread. Idempotent.
  void Stop();

 private:
  void Loop();
  // Sends one batch; returns false if the events should be kept for a retry.
  bool SendBatch(std::vector<v1::JobEvent> batch);

  const SendFn send_;
  const std::function<void()> on_lease_lost_;
  const EventReporterOptions options_;
  mutable absl::Mutex mu_;
  std::deque<v1::JobEvent> pending_ ABSL_GUARDED_BY(mu_);
  v1::Progress latest_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool lease_lost_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace compressd
