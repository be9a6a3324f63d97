#include "server/http/http_server.h"

#include <httplib.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "server/http/dashboard.h"
#include "server/http/dashboard_api.h"
#include "server/http/http_auth.h"
#include "server/http/http_util.h"
#include "server/jobs/job_service.h"

namespace compressd {
namespace {

// The probes' pool: small, and never shared with dashboard or API clients.
constexpr int kProbeThreads = 2;
constexpr char kPrometheusText[] = "text/plain; version=0.0.4; charset=utf-8";

void ApplyLimits(httplib::Server& server, int threads, int io_timeout_ms, int keep_alive_s) {
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_read_timeout(io_timeout_ms / 1000, (io_timeout_ms % 1000) * 1000);
  server.set_write_timeout(io_timeout_ms / 1000, (io_timeout_ms % 1000) * 1000);
  server.set_keep_alive_timeout(keep_alive_s);
  server.set_keep_alive_max_count(100);
  // cpp-httplib's default sets SO_REUSEPORT, which would let a second process
  // bind the same port silently; SO_REUSEADDR alone still allows a quick restart.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
}

}  // namespace

std::vector<std::string> DefaultAllowedHosts(const std::string& listen_host) {
  const bool loopback = listen_host == "localhost" || listen_host == "::1" ||
                        listen_host == "[::1]" || absl::StartsWith(listen_host, "127.");
  if (loopback) return {"localhost", "127.0.0.1", "[::1]"};
  return {"*"};
}

bool HostAllowed(std::string_view host_header, const std::vector<std::string>& allowed) {
  if (std::find(allowed.begin(), allowed.end(), "*") != allowed.end()) return true;
  // The name without its port: "[::1]:80" -> "[::1]", "a.b:80" -> "a.b".
  absl::string_view name(host_header.data(), host_header.size());
  if (absl::StartsWith(name, "[")) {
    const size_t close = name.find(']');
    if (close == absl::string_view::npos) return false;
    name = name.substr(0, close + 1);
  } else if (const size_t colon = name.rfind(':'); colon != absl::string_view::npos) {
    name = name.substr(0, colon);
  }
  if (name.empty()) return false;
  for (const std::string& a : allowed) {
    if (absl::EqualsIgnoreCase(a, name)) return true;
  }
  return false;
}

HttpServer::HttpServer(HttpServerOptions options, prometheus::Registry& registry,
                       const ServerCore& core, ReadinessCheck ready)
    : options_(std::move(options)),
      registry_(registry),
      core_(core),
      ready_(std::move(ready)),
      server_(options_.tls_cert.empty()
                  ? std::make_unique<httplib::Server>()
                  : std::make_unique<httplib::SSLServer>(options_.tls_cert.c_str(),
                                                         options_.tls_key.c_str())) {
  RegisterHandlers();
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::RegisterProbes(httplib::Server& server) {
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", kTextType);
  });
  server.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    const absl::Status status = ready_ ? ready_() : absl::OkStatus();
    res.status = status.ok() ? 200 : 503;
    res.set_content(status.ok() ? "ready\n" : status.ToString() + "\n", kTextType);
  });
}

void HttpServer::RegisterHandlers() {
  ApplyLimits(*server_, options_.threads, options_.io_timeout_ms, options_.keep_alive_timeout_s);
  server_->set_pre_routing_handler([allowed = options_.allowed_hosts.empty()
                                                  ? DefaultAllowedHosts(options_.host)
                                                  : options_.allowed_hosts](
                                       const httplib::Request& req, httplib::Response& res) {
    const std::string host = req.get_header_value("Host");
    if (HostAllowed(host, allowed)) return httplib::Server::HandlerResponse::Unhandled;
    res.status = 421;
    res.set_content(absl::StrCat("host '", ToValidUtf8(host, 256),
                                 "' is not served here (compressd --http-allowed-hosts)\n"),
                    kTextType);
    return httplib::Server::HandlerResponse::Handled;
  });
  RegisterProbes(*server_);
  if (options_.probe_port >= 0) {
    probes_ = std::make_unique<httplib::Server>();
    ApplyLimits(*probes_, kProbeThreads, options_.io_timeout_ms, options_.keep_alive_timeout_s);
    RegisterProbes(*probes_);
  }
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    core_.jobs.RefreshMetrics();
    res.set_content(prometheus::TextSerializer().Serialize(registry_.Collect()), kPrometheusText);
  });
  RegisterLogin(*server_, options_.auth, options_.secure_cookie);
  RegisterDashboardApi(*server_, core_, options_.auth);
  RegisterDashboardPages(*server_, core_, options_.auth);
}

absl::StatusOr<int> HttpServer::Serve(httplib::Server& server, int port, std::thread* thread,
                                      std::atomic<bool>* returned) {
  const int bound = port == 0 ? server.bind_to_any_port(options_.host)
                              : (server.bind_to_port(options_.host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat("http: cannot listen on ", options_.host, ":", port));
  }
  *thread = std::thread([&server, returned] {
    server.listen_after_bind();
    returned->store(true);
  });
  // cpp-httplib's stop() does nothing until the listen loop runs, so a Stop()
  // right after Start() could hang: wait for the loop (microseconds).
  while (!server.is_running() && !returned->load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return bound;
}

absl::Status HttpServer::Start() {
  if (thread_.joinable()) {
    return absl::FailedPreconditionError("http: already started");
  }
  if (!server_->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "http: cannot use --tls-cert ", options_.tls_cert, " / --tls-key ", options_.tls_key));
  }
  if (!options_.tls_cert.empty() && tls_reload_ == nullptr) {
    tls_reload_ = std::make_unique<ReloadingCertificate>(options_.tls_cert, options_.tls_key);
    RETURN_IF_ERROR(tls_reload_->Attach(static_cast<httplib::SSLServer&>(*server_).ssl_context()));
  }
  ASSIGN_OR_RETURN(port_, Serve(*server_, options_.port, &thread_, &listen_returned_));
  if (probes_ != nullptr) {
    absl::StatusOr<int> probe =
        Serve(*probes_, options_.probe_port, &probe_thread_, &probe_listen_returned_);
    if (!probe.ok()) {
      Stop();
      return probe.status();
    }
    probe_port_ = *probe;
  }
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (probe_thread_.joinable()) {
    probes_->stop();
    probe_thread_.join();
  }
  if (!thread_.joinable()) {
    return;
  }
  server_->stop();
  thread_.join();
}

}  // namespace compressd
