#include "server/metrics/server_metrics.h"

#include <prometheus/histogram.h>

#include <map>
#include <string_view>

#include "server/core/job_state.h"

namespace compressd {
namespace {

// 1 ms .. 10 s, roughly 1-2.5-5 per decade.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};
  return kBuckets;
}

prometheus::Gauge* NewGauge(prometheus::Registry& registry, const std::string& name,
                            const std::string& help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

prometheus::Counter* NewCounter(prometheus::Registry& registry, const std::string& name,
                                const std::string& help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace

ServerMetrics::ServerMetrics(prometheus::Registry& registry)
    : rpc_total_(prometheus::BuildCounter()
                     .Name("compressd_rpc_total")
                     .Help("RPCs handled, by method and status code.")
                     .Register(registry)),
      rpc_latency_(prometheus::BuildHistogram()
                       .Name("compressd_rpc_latency_seconds")
                       .Help("RPC handling latency in seconds, by method.")
                       .Register(registry)),
      jobs_(prometheus::BuildGauge()
                .Name("compressd_jobs")
                .Help("Jobs by state.")
                .Register(registry)),
      queue_depth_(NewGauge(registry, "compressd_queue_depth", "Jobs waiting for a worker.")),
      task_attempts_(NewCounter(registry, "compressd_task_attempts_total",
                                "Task attempts started (leases handed out).")),
      workers_connected_(
          NewGauge(registry, "compressd_workers_connected", "Workers heard from recently.")),
      workers_busy_(NewGauge(registry, "compressd_workers_busy", "Workers holding a lease.")),
      gpu_workers_connected_(NewGauge(registry, "compressd_gpu_workers_connected",
                                      "Workers with a CUDA device (--device cuda:N).")),
      gpu_workers_busy_(
          NewGauge(registry, "compressd_gpu_workers_busy", "GPU workers holding a lease.")),
      gpu_memory_bytes_(NewGauge(registry, "compressd_gpu_memory_bytes",
                                 "Device memory of the connected GPU workers, summed.")),
      bytes_uploaded_(NewCounter(registry, "compressd_bytes_uploaded_total",
                                 "Bytes received in model and dataset uploads.")),
      bytes_downloaded_(NewCounter(registry, "compressd_bytes_downloaded_total",
                                   "Bytes sent in artifact and blob downloads.")),
      blobs_collected_(NewCounter(registry, "compressd_blobs_collected_total",
                                  "Unreferenced blobs deleted by the garbage collector.")),
      blob_bytes_collected_(NewCounter(registry, "compressd_blob_bytes_collected_total",
                                       "Bytes of the blobs the garbage collector deleted.")),
      blobs_scrubbed_(NewCounter(registry, "compressd_blobs_scrubbed_total",
                                 "Blobs re-hashed against their sha256 by the scrub.")),
      blob_scrub_corrupt_(NewCounter(registry, "compressd_blob_scrub_corrupt_total",
                                     "Blobs the scrub found corrupted (and quarantined).")),
      blob_scrub_missing_(NewGauge(registry, "compressd_blob_scrub_missing",
                                   "Referenced blobs absent from the store at the last scrub.")) {}

void ServerMetrics::RecordRpc(const std::string& method, const std::string& code, double seconds) {
  rpc_total_.Add({{"method", method}, {"code", code}}).Increment();
  rpc_latency_.Add({{"method", method}}, LatencyBuckets()).Observe(seconds);
}

prometheus::Gauge& ServerMetrics::jobs_in_state(const std::string& state) {
  return jobs_.Add({{"state", state}});
}

void ServerMetrics::SetJobCounts(const std::vector<std::pair<v1::JobState, int64_t>>& counts) {
  std::map<v1::JobState, int64_t> by_state = {
      {v1::QUEUED, 0}, {v1::RUNNING, 0}, {v1::SUCCEEDED, 0}, {v1::FAILED, 0}, {v1::CANCELLED, 0}};
  for (const auto& [state, count] : counts) by_state[state] = count;
  for (const auto& [state, count] : by_state) {
    std::string_view name = JobStateName(state);
    jobs_in_state(std::string(name)).Set(static_cast<double>(count));
  }
  queue_depth().Set(static_cast<double>(by_state[v1::QUEUED]));
}

}  // namespace compressd
