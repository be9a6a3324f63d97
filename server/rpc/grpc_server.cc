#include "server/rpc/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "server/rpc/rpc_metrics_interceptor.h"

namespace compressd {

std::string JoinHostPort(const std::string& host, int port) {
  const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  return ipv6 ? absl::StrCat("[", host, "]:", port) : absl::StrCat(host, ":", port);
}

namespace {

// Plaintext, or TLS from PEM files that a FileWatcherCertificateProvider
// re-reads when they change.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const GrpcTlsOptions& tls) {
  if (tls.cert_path.empty() && tls.key_path.empty()) {
    if (!tls.worker_ca_path.empty()) {
      return absl::InvalidArgumentError("--worker-ca: needs --tls-cert and --tls-key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (tls.cert_path.empty() || tls.key_path.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key: give both or neither");
  }
  for (const auto& [flag, path] : {std::pair<const char*, std::string>{"--tls-cert", tls.cert_path},
                                   {"--tls-key", tls.key_path},
                                   {"--worker-ca", tls.worker_ca_path}}) {
    if (path.empty()) continue;
    absl::StatusOr<std::string> pem = ReadFileToString(path);
    if (!pem.ok())
      return absl::InvalidArgumentError(absl::StrCat(flag, ": ", pem.status().message()));
    if (pem->find("-----BEGIN ") == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not a PEM file"));
    }
  }
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key_path, tls.cert_path, tls.worker_ca_path, tls.refresh_interval_s);
  grpc::experimental::TlsServerCredentialsOptions tls_options(provider);
  tls_options.watch_identity_key_cert_pairs();
  if (!tls.worker_ca_path.empty()) {
    tls_options.watch_root_certs();
    // Optional for clients (compressctl has none), verified when presented;
    // the WorkerService requires one.
    tls_options.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(tls_options);
}

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const GrpcServerOptions& options,
                                                              const ServerCore& core) {
  // Process-wide switches; both are idempotent.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                   ServerCredentialsFor(options.tls));
  std::unique_ptr<GrpcServer> server(new GrpcServer());
  server->idle_ = std::make_unique<UploadIdleMonitor>(options.upload_idle_timeout_ms);
  server->audit_ = std::make_unique<AuditLog>(core.store);
  server->compression_ = std::make_unique<CompressionServiceImpl>(
      core.store, core.blobs, core.bus, core.models, core.jobs, core.metrics, *server->idle_,
      core.auth, *server->audit_, options.max_watch_streams_per_key);
  server->worker_ = std::make_unique<WorkerServiceImpl>(
      core.scheduler, core.store, core.blobs, *server->idle_, core.auth,
      /*require_client_cert=*/!options.tls.worker_ca_path.empty());
  server->admin_ = std::make_unique<AdminServiceImpl>(core.store, core.auth, *server->audit_);

  grpc::ServerBuilder builder;
  const std::string listen = JoinHostPort(options.host, options.port);
  builder.AddListeningPort(listen, credentials, &server->port_);
  builder.RegisterService(server->compression_.get());
  builder.RegisterService(server->worker_.get());
  builder.RegisterService(server->admin_.get());
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  // gRPC enables SO_REUSEPORT by default, which would let a second compressd
  // bind the same port silently; a taken port must be an error instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(std::make_unique<RpcMetricsInterceptorFactory>(core.metrics));
  builder.experimental().SetInterceptorCreators(std::move(creators));

  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("grpc: cannot listen on ", listen));
  }
  server->address_ = JoinHostPort(options.host, server->port_);
  server->serving_.store(true);
  return server;
}

GrpcServer::~GrpcServer() { Shutdown(std::chrono::milliseconds(0)); }

void GrpcServer::Shutdown(std::chrono::milliseconds grace) {
  if (server_ == nullptr || !serving_.exchange(false)) {
    return;
  }
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(false);
  }
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
}

}  // namespace compressd
