// The gRPC front end of compressd: CompressionService, WorkerService and
// AdminService on one listening port, plus the standard health service,
// server reflection and per-RPC metrics; plaintext or TLS (certificates
// re-read when their files change), optionally asking workers for client
// certificates (mTLS). Shared by the compressd process and the tests.
// Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/auth/audit_log.h"
#include "server/auth/authenticator.h"
#include "server/core/event_bus.h"
#include "server/jobs/job_service.h"
#include "server/metrics/server_metrics.h"
#include "server/models/model_registry.h"
#include "server/rpc/admin_service.h"
#include "server/rpc/compression_service.h"
#include "server/rpc/upload_idle_monitor.h"
#include "server/rpc/worker_service.h"
#include "server/scheduler/scheduler.h"
#include "server/server_core.h"
#include "server/store/blob_store.h"
#include "server/store/store.h"

namespace compressd {

// TLS for the gRPC port: PEM files, watched for changes (a renewed
// certificate is picked up without a restart; calls in flight keep theirs).
struct GrpcTlsOptions {
  std::string cert_path;  // empty: plaintext
  std::string key_path;
  // CA bundle for client certificates: when set, clients may present one and
  // the WorkerService admits only callers whose certificate it verifies.
  std::string worker_ca_path;
  unsigned int refresh_interval_s = 5;
};

struct GrpcServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0 picks a free port
  int max_receive_message_bytes = 16 << 20;
  // An upload stream with no message for this long is cancelled
  // (upload_idle_monitor.h).
  int64_t upload_idle_timeout_ms = 60000;
  GrpcTlsOptions tls;
  // WatchJob streams one API key may hold open at once (0: unlimited).
  int max_watch_streams_per_key = 256;
};

class GrpcServer {
 public:
  // Binds and starts serving. UNAVAILABLE if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(const GrpcServerOptions& options,
                                                           const ServerCore& core);
  ~GrpcServer();  // Shutdown(0) if still serving

  int port() const { return port_; }
  // "host:port" with the bound port (IPv6 hosts in brackets).
  const std::string& address() const { return address_; }
  bool serving() const { return serving_.load(); }

  // Marks the health service NOT_SERVING, stops accepting calls, lets calls in
  // flight finish until `grace` passes, then cancels the rest and waits for
  // them. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  GrpcServer() = default;

  std::unique_ptr<UploadIdleMonitor> idle_;  // outlives the services and their streams
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<CompressionServiceImpl> compression_;
  std::unique_ptr<AdminServiceImpl> admin_;
  std::unique_ptr<WorkerServiceImpl> worker_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string address_;
  std::atomic<bool> serving_{false};
};

// Joins a host and port, bracketing IPv6 literals: "::1", 5 -> "[::1]:5".
std::string JoinHostPort(const std::string& host, int port);

}  // namespace compressd
