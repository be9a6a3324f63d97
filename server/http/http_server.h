// The HTTP side of compressd, for operators: Prometheus metrics, liveness and
// readiness probes, a small HTML dashboard and a JSON job list. Serves on its
// own thread (cpp-httplib's thread pool) between Start() and Stop().
//
//   GET /metrics    Prometheus text format (job gauges refreshed per scrape)
//   GET /healthz    200 "ok" while the process is alive
//   GET /readyz     200 "ready" when the readiness check passes, else 503 and the reason
//   GET /           HTML dashboard: recent jobs, connected workers (auto-refresh)
//   GET /api/jobs   JSON v1.ListJobsResponse; query: state, page_size, page_token
//
// Thread-safe.
#pragma once

#include <prometheus/registry.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "server/jobs/job_service.h"
#include "server/metrics/server_metrics.h"

namespace httplib {
class Server;
}

namespace compressd {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0 picks a free port
  int dashboard_jobs = 50;
  int refresh_seconds = 2;
};

class HttpServer {
 public:
  // OK when the server can take traffic; otherwise why not.
  using ReadinessCheck = std::function<absl::Status()>;

  HttpServer(HttpServerOptions options, prometheus::Registry& registry, JobService& jobs,
             ServerMetrics& metrics, ReadinessCheck ready);
  ~HttpServer();  // Stop()

  // Binds the port and starts serving. UNAVAILABLE if the port cannot be bound.
  absl::Status Start();
  // Stops serving and joins the thread. Idempotent.
  void Stop();
  // The bound port (valid after Start).
  int port() const { return port_; }

 private:
  void RegisterHandlers();

  const HttpServerOptions options_;
  prometheus::Registry& registry_;
  JobService& jobs_;
  ServerMetrics& metrics_;
  const ReadinessCheck ready_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> listen_returned_{false};
  int port_ = 0;
};

}  // namespace compressd
