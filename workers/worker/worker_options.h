// How a compress-worker process runs (flags of main.cc), shared by the
// worker's loop and the runners of its tasks and parts.
#pragma once

#include <cstdint>
#include <string>

#include "workers/worker/blob_cache.h"
#include "workers/worker/event_reporter.h"

namespace compressd {
namespace engine {
class SolverBackend;  // engine/algorithms/solver_backend.h
}  // namespace engine


struct WorkerOptions {
  std::string cache_dir;  // blobs/ and tasks/ live here
  std::string name;       // default hostname:pid
  std::string device = "cpu";  // --device, resolved (engine/runtime/device_spec.h)
  // The layer solver of `device` (not owned; null: the CPU).
  engine::SolverBackend* solver = nullptr;
  // With a CUDA device: what registration reports of it.
  std::string device_name;
  std::string compute_capability;  // "9.0"
  uint64_t device_memory_bytes = 0;
  int threads = 1;
  // The memory budget of a job (--memory-budget; RunOptions::memory_budget_bytes),
  // also registered with the server; 0: 90% of physical memory.
  uint64_t memory_bytes = 0;
  int64_t lease_wait_ms = 10000;
  int64_t initial_backoff_ms = 250;
  int64_t max_backoff_ms = 10000;
  int64_t finish_retry_ms = 60000;  // how long CompleteTask/FailTask/uploads retry UNAVAILABLE
  // Fault injection for demos and failure drills (--slow-ms-per-layer): pause
  // this long after each compressed layer, so a job can be watched, cancelled
  // or have its worker killed mid-run. 0 in production.
  int64_t slow_ms_per_layer = 0;
  EventReporterOptions events;
  BlobCacheOptions blobs;
};

}  // namespace compressd
