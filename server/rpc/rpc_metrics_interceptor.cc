#include "server/rpc/rpc_metrics_interceptor.h"

#include <chrono>
#include <string>

#include "absl/status/status.h"

namespace compressd {
namespace {

using grpc::experimental::InterceptionHookPoints;

class RpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(ServerMetrics& metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
      metrics_.RecordRpc(method_, RpcCodeLabel(methods->GetSendStatus().error_code()),
                         elapsed.count());
    }
    methods->Proceed();
  }

 private:
  ServerMetrics& metrics_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
};

}  // namespace

std::string RpcMethodLabel(const char* full_method) {
  if (full_method == nullptr) {
    return "unknown";
  }
  std::string method(full_method);
  if (!method.empty() && method[0] == '/') {
    method.erase(0, 1);
  }
  return method;
}

std::string RpcCodeLabel(grpc::StatusCode code) {
  // absl and gRPC share the canonical code numbering.
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

grpc::experimental::Interceptor* RpcMetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RpcMetricsInterceptor(metrics_, RpcMethodLabel(info->method()));
}

}  // namespace compressd
