#include "server/http/http_server.h"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "server/http/dashboard.h"
#include "server/http/http_auth.h"

namespace compressd {
namespace {

constexpr char kText[] = "text/plain; charset=utf-8";
constexpr char kPrometheusText[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kJson[] = "application/json";
// Jobs are listed oldest first, so the dashboard pages to the end; this caps
// the work of one refresh.
constexpr int kDashboardPageSize = 1000;
constexpr int kDashboardMaxPages = 20;
// /api/jobs: a bounded page unless the caller asks for another size.
constexpr int kApiJobsDefaultPage = 20;
constexpr int kApiJobsMaxPage = 100;

// HTTP status for an absl error (used by the JSON API).
int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

void SendError(const absl::Status& status, httplib::Response& res) {
  res.status = HttpStatusFor(status);
  res.set_content(status.ToString() + "\n", kText);
}

absl::StatusOr<v1::ListJobsRequest> ParseListJobs(const httplib::Request& req) {
  v1::ListJobsRequest list;
  if (req.has_param("state")) {
    v1::JobState state;
    if (!v1::JobState_Parse(req.get_param_value("state"), &state)) {
      return absl::InvalidArgumentError(
          absl::StrCat("state: unknown job state \"", req.get_param_value("state"), "\""));
    }
    list.set_state(state);
  }
  int page_size = kApiJobsDefaultPage;
  if (req.has_param("page_size") &&
      (!absl::SimpleAtoi(req.get_param_value("page_size"), &page_size) || page_size < 1 ||
       page_size > kApiJobsMaxPage)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be an integer in [1, ", kApiJobsMaxPage, "]"));
  }
  list.set_page_size(page_size);
  list.set_page_token(req.get_param_value("page_token"));
  return list;
}

// The `count` most recent jobs, newest first.
absl::StatusOr<v1::ListJobsResponse> RecentJobs(JobService& jobs, int count, const Scope& scope) {
  std::deque<v1::Job> recent;
  v1::ListJobsRequest req;
  req.set_page_size(kDashboardPageSize);
  for (int page = 0; page < kDashboardMaxPages; ++page) {
    ASSIGN_OR_RETURN(v1::ListJobsResponse resp, jobs.List(req, scope));
    for (v1::Job& job : *resp.mutable_jobs()) {
      recent.push_back(std::move(job));
      if (static_cast<int>(recent.size()) > count) {
        recent.pop_front();
      }
    }
    if (resp.next_page_token().empty()) {
      break;
    }
    req.set_page_token(resp.next_page_token());
  }
  v1::ListJobsResponse out;
  for (auto it = recent.rbegin(); it != recent.rend(); ++it) {
    *out.add_jobs() = std::move(*it);
  }
  return out;
}

}  // namespace

namespace {

// The probes' pool: small, and never shared with dashboard or API clients.
constexpr int kProbeThreads = 2;

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

HttpServer::HttpServer(HttpServerOptions options, prometheus::Registry& registry, JobService& jobs,
                       ServerMetrics& metrics, ReadinessCheck ready)
    : options_(std::move(options)),
      registry_(registry),
      jobs_(jobs),
      metrics_(metrics),
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
    res.set_content("ok\n", kText);
  });
  server.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    const absl::Status status = ready_ ? ready_() : absl::OkStatus();
    res.status = status.ok() ? 200 : 503;
    res.set_content(status.ok() ? "ready\n" : status.ToString() + "\n", kText);
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
                    kText);
    return httplib::Server::HandlerResponse::Handled;
  });
  RegisterProbes(*server_);
  if (options_.probe_port >= 0) {
    probes_ = std::make_unique<httplib::Server>();
    ApplyLimits(*probes_, kProbeThreads, options_.io_timeout_ms, options_.keep_alive_timeout_s);
    RegisterProbes(*probes_);
  }
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    jobs_.RefreshMetrics();
    res.set_content(prometheus::TextSerializer().Serialize(registry_.Collect()), kPrometheusText);
  });
  RegisterLogin(*server_, options_.auth, options_.secure_cookie);
  server_->Get("/api/jobs", [this](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<Principal> who = HttpPrincipal(options_.auth, req);
    if (!who.ok()) return SendError(who.status(), res);
    absl::StatusOr<v1::ListJobsRequest> list = ParseListJobs(req);
    absl::StatusOr<v1::ListJobsResponse> jobs =
        list.ok() ? jobs_.List(*list, who->scope())
                  : absl::StatusOr<v1::ListJobsResponse>(list.status());
    if (!jobs.ok()) {
      return SendError(jobs.status(), res);
    }
    std::string json;
    google::protobuf::util::JsonPrintOptions print;
    print.always_print_primitive_fields = true;
    if (!google::protobuf::util::MessageToJsonString(*jobs, &json, print).ok()) {
      return SendError(absl::InternalError("cannot render jobs as JSON"), res);
    }
    res.set_content(json, kJson);
  });
  server_->Get("/", [this](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<Principal> who = HttpPrincipal(options_.auth, req);
    if (!who.ok()) {
      res.status = 401;
      res.set_content(RenderLogin(std::string(who.status().message())), "text/html; charset=utf-8");
      return;
    }
    jobs_.RefreshMetrics();
    DashboardData data;
    absl::StatusOr<v1::ListJobsResponse> recent =
        RecentJobs(jobs_, options_.dashboard_jobs, who->scope());
    if (!recent.ok()) {
      return SendError(recent.status(), res);
    }
    data.jobs = *std::move(recent);
    data.workers_connected = metrics_.workers_connected().Value();
    data.workers_busy = metrics_.workers_busy().Value();
    data.queue_depth = metrics_.queue_depth().Value();
    data.refresh_seconds = options_.refresh_seconds;
    res.set_content(RenderDashboard(data), "text/html; charset=utf-8");
  });
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
