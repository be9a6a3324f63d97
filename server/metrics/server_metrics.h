// The server's Prometheus metrics, registered on a registry passed in (no
// process-wide singletons). Thread-safe (prometheus-cpp metrics are atomic).
// Depends on nothing in server/ but server/core/.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "compressd/v1/compressd.pb.h"

namespace compressd {

class ServerMetrics {
 public:
  explicit ServerMetrics(prometheus::Registry& registry);

  // Per-RPC accounting: compressd_rpc_total{method,code} and
  // compressd_rpc_latency_seconds{method}.
  void RecordRpc(const std::string& method, const std::string& code, double seconds);

  // Sets compressd_jobs{state} for every job state (0 for a state absent
  // from `counts`) and compressd_queue_depth (the QUEUED count), from
  // Store::CountJobsByState.
  void SetJobCounts(const std::vector<std::pair<v1::JobState, int64_t>>& counts);

  prometheus::Gauge& jobs_in_state(const std::string& state);       // compressd_jobs{state}
  prometheus::Gauge& queue_depth() { return *queue_depth_; }        // compressd_queue_depth
  prometheus::Counter& task_attempts() { return *task_attempts_; }  // compressd_task_attempts_total
  prometheus::Gauge& workers_connected() { return *workers_connected_; }
  prometheus::Gauge& workers_busy() { return *workers_busy_; }
  prometheus::Gauge& gpu_workers_connected() { return *gpu_workers_connected_; }
  prometheus::Gauge& gpu_workers_busy() { return *gpu_workers_busy_; }
  prometheus::Gauge& gpu_memory_bytes() { return *gpu_memory_bytes_; }
  prometheus::Counter& bytes_uploaded() { return *bytes_uploaded_; }
  prometheus::Counter& bytes_downloaded() { return *bytes_downloaded_; }
  // Blob garbage collection (blob_gc.h): compressd_blobs_collected_total,
  // compressd_blob_bytes_collected_total.
  prometheus::Counter& blobs_collected() { return *blobs_collected_; }
  prometheus::Counter& blob_bytes_collected() { return *blob_bytes_collected_; }
  // The blob scrub (blob_scrub.h): compressd_blobs_scrubbed_total,
  // compressd_blob_scrub_corrupt_total, compressd_blob_scrub_missing.
  prometheus::Counter& blobs_scrubbed() { return *blobs_scrubbed_; }
  prometheus::Counter& blob_scrub_corrupt() { return *blob_scrub_corrupt_; }
  prometheus::Gauge& blob_scrub_missing() { return *blob_scrub_missing_; }

 private:
  prometheus::Family<prometheus::Counter>& rpc_total_;
  prometheus::Family<prometheus::Histogram>& rpc_latency_;
  prometheus::Family<prometheus::Gauge>& jobs_;
  prometheus::Gauge* queue_depth_;
  prometheus::Counter* task_attempts_;
  prometheus::Gauge* workers_connected_;
  prometheus::Gauge* workers_busy_;
  prometheus::Gauge* gpu_workers_connected_;
  prometheus::Gauge* gpu_workers_busy_;
  prometheus::Gauge* gpu_memory_bytes_;
  prometheus::Counter* bytes_uploaded_;
  prometheus::Counter* bytes_downloaded_;
  prometheus::Counter* blobs_collected_;
  prometheus::Counter* blob_bytes_collected_;
  prometheus::Counter* blobs_scrubbed_;
  prometheus::Counter* blob_scrub_corrupt_;
  prometheus::Gauge* blob_scrub_missing_;
};

}  // namespace compressd
