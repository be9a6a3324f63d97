// Records every RPC served (method, final status code, latency) into
// ServerMetrics::RecordRpc. Installed once on the grpc::ServerBuilder, so no
// handler has to remember to do it. Latency runs from the call's arrival
// (interceptor creation) to the status being sent. Thread-safe.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include "server/metrics/server_metrics.h"

namespace compressd {

class RpcMetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(ServerMetrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  ServerMetrics& metrics_;
};

// "/compressd.v1.JobService/GetJob" -> "compressd.v1.JobService/GetJob".
std::string RpcMethodLabel(const char* full_method);
// grpc::StatusCode -> its canonical name, e.g. "NOT_FOUND".
std::string RpcCodeLabel(grpc::StatusCode code);

}  // namespace compressd
