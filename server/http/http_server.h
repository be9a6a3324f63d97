// The HTTP side of compressd, for operators: Prometheus metrics, liveness and
// readiness probes, a small HTML dashboard and a JSON job list. Serves on its
// own thread (cpp-httplib's thread pool) between Start() and Stop().
//
//   GET /metrics    Prometheus text format (job gauges refreshed per scrape)
//   GET /healthz    200 "ok" while the process is alive
//   GET /readyz     200 "ready" when the readiness check passes, else 503 and the reason
//   GET /login, POST /login   the sign-in form (http_auth.h)
//   the dashboard's pages and assets (dashboard.h) and its JSON API under
//   /api/ (dashboard_api.h)
//
// Slow clients: every connection has read and write timeouts and a bounded
// keep-alive, and the pool is `threads` wide; clients that hold it anyway
// cannot starve the probes, which are also served on their own small pool
// and port (`probe_port`: /healthz and /readyz only) for Kubernetes.
//
// Host header (DNS rebinding: a web page on another origin resolving its
// name to this address): a request whose Host is not one of `allowed_hosts`
// gets 421 Misdirected Request. By default a server bound to loopback serves
// only localhost, 127.0.0.1 and [::1]; one bound elsewhere serves any Host
// unless --http-allowed-hosts names them. The probe port never checks.
//
// Thread-safe.
#pragma once

#include <prometheus/registry.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/auth/authenticator.h"
#include "server/http/tls_reload.h"
#include "server/server_core.h"

namespace httplib {
class Server;
}

namespace compressd {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0 picks a free port
  // The probes' own port: -1 none, 0 a free one.
  int probe_port = -1;
  int threads = 16;              // the main pool
  int io_timeout_ms = 5000;      // per read / write on a connection
  int keep_alive_timeout_s = 5;  // idle keep-alive connections are closed after this
  // Host names (no port) the main port answers; "*" any; empty: the default
  // for `host` (DefaultAllowedHosts).
  std::vector<std::string> allowed_hosts;
  // Checks the key of every dashboard and /api request (http_auth.h); null:
  // no check (tests of the HTTP layer alone).
  Authenticator* auth = nullptr;
  bool secure_cookie = false;  // the login cookie gets Secure (served behind TLS)
  // PEM files: serve HTTPS (the same certificate as the gRPC port).
  std::string tls_cert;
  std::string tls_key;
};

// localhost, 127.0.0.1 and [::1] for a loopback `listen_host`; else {"*"}.
std::vector<std::string> DefaultAllowedHosts(const std::string& listen_host);
// Whether the Host header `host_header` ("name", "name:port", "[v6]:port")
// names one of `allowed` (case-insensitive; "*" allows any, even none).
bool HostAllowed(std::string_view host_header, const std::vector<std::string>& allowed);

class HttpServer {
 public:
  // OK when the server can take traffic; otherwise why not.
  using ReadinessCheck = std::function<absl::Status()>;

  HttpServer(HttpServerOptions options, prometheus::Registry& registry, const ServerCore& core,
             ReadinessCheck ready);
  ~HttpServer();  // Stop()

  // Binds the port and starts serving. UNAVAILABLE if the port cannot be bound.
  absl::Status Start();
  // Stops serving and joins the thread. Idempotent.
  void Stop();
  // The bound ports (valid after Start); probe_port() is -1 without one.
  int port() const { return port_; }
  int probe_port() const { return probe_port_; }

 private:
  void RegisterHandlers();
  void RegisterProbes(httplib::Server& server);
  // Binds `server` to `port` (0: any) and runs it on `thread`; the bound port or an error.
  absl::StatusOr<int> Serve(httplib::Server& server, int port, std::thread* thread,
                            std::atomic<bool>* returned);

  const HttpServerOptions options_;
  prometheus::Registry& registry_;
  const ServerCore core_;
  const ReadinessCheck ready_;
  // Before server_: its SSL context calls into this until server_ is gone.
  std::unique_ptr<ReloadingCertificate> tls_reload_;
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<httplib::Server> probes_;  // null without a probe port
  std::thread thread_, probe_thread_;
  std::atomic<bool> listen_returned_{false}, probe_listen_returned_{false};
  int port_ = 0;
  int probe_port_ = -1;
};

}  // namespace compressd
