// Timing options of the scheduler, shared by its classes (scheduler.h).
#pragma once

#include <cstdint>
#include <functional>

#include "common/util.h"

namespace compressd {

struct SchedulerOptions {
  int64_t lease_ttl_ms = 15000;
  int64_t heartbeat_interval_ms = 2000;
  int64_t worker_timeout_ms = 30000;  // a worker unheard of this long is disconnected
  int64_t max_wait_ms = 30000;        // cap on LeaseTask long-poll
  int64_t tick_ms = 200;              // background thread period
  // Events a task may report a second on average, and in one burst
  // (event_rate.h); 0: unlimited.
  double max_events_per_s = 1000;
  double max_event_burst = 20000;
  // Wall clock in milliseconds; tests substitute a fake. Empty means NowMs().
  std::function<int64_t()> clock;

  // The current time by `clock`.
  int64_t Now() const { return clock ? clock() : NowMs(); }
};

}  // namespace compressd
