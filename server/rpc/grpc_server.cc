#include "server/rpc/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/rpc/rpc_metrics_interceptor.h"

namespace compressd {

std::string JoinHostPort(const std::string& host, int port) {
  const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  return ipv6 ? absl::StrCat("[", host, "]:", port) : absl::StrCat(host, ":", port);
}

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const GrpcServerOptions& options,
                                                              const ServerCore& core) {
  // Process-wide switches; both are idempotent.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  std::unique_ptr<GrpcServer> server(new GrpcServer());
  server->idle_ = std::make_unique<UploadIdleMonitor>(options.upload_idle_timeout_ms);
  server->compression_ = std::make_unique<CompressionServiceImpl>(
      core.store, core.blobs, core.bus, core.models, core.jobs, core.metrics, *server->idle_);
  server->worker_ = std::make_unique<WorkerServiceImpl>(core.scheduler, core.store, core.blobs,
                                                        core.metrics, *server->idle_);

  grpc::ServerBuilder builder;
  const std::string listen = JoinHostPort(options.host, options.port);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &server->port_);
  builder.RegisterService(server->compression_.get());
  builder.RegisterService(server->worker_.get());
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
