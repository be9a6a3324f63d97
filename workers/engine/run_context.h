// What a running job talks to: an EventSink for progress, metrics and logs,
// and a CancelToken checked between units of work.
#pragma once

#include <atomic>
#include <string>

#include "compressd/v1/compressd.pb.h"

namespace compressd {

// Receives job events (time_ms set, sequence left 0: the server assigns it).
// Implementations must be thread-safe; Emit must not block for long.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void Emit(const v1::JobEvent& event) = 0;
};

// Set once, from any thread; read by the job between tensors. Thread-safe.
class CancelToken {
 public:
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> cancelled_{false};
};

// Helpers that build and emit one event.
void EmitProgress(EventSink& sink, const std::string& stage, int current, int total,
                  const std::string& message);
void EmitMetric(EventSink& sink, const std::string& name, double value,
                const std::string& layer);
void EmitLog(EventSink& sink, const std::string& level, const std::string& message);

}  // namespace compressd
