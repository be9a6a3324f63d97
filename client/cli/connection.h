// The client's connection to compressd: one channel and stub, opened lazily
// by the commands that need the network. Not thread-safe.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "compressd/v1/admin.grpc.pb.h"
#include "compressd/v1/compressd.grpc.pb.h"

namespace compressd::client {

inline constexpr std::chrono::seconds kConnectTimeout{5};
inline constexpr std::chrono::seconds kUnaryDeadline{60};

class Connection {
 public:
  // Creates the channel and waits up to `connect_timeout` for it to connect:
  // UNAVAILABLE "cannot reach compressd at HOST:PORT" otherwise.
  // `security`: the API key and TLS files (common/channel.h).
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const std::string& target, const ChannelSecurity& security = {},
      std::chrono::milliseconds connect_timeout = kConnectTimeout);

  v1::CompressionService::Stub& stub() { return *stub_; }
  v1::AdminService::Stub& admin() { return *admin_; }
  const std::string& target() const { return target_; }
  // Waits up to `timeout` for the channel to (re)connect; true if it did.
  bool WaitForConnected(std::chrono::milliseconds timeout);

 private:
  Connection(std::string target, std::shared_ptr<grpc::Channel> channel);

  std::string target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CompressionService::Stub> stub_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

// Sets the standard deadline for a unary call on `context`.
void SetUnaryDeadline(grpc::ClientContext* context);

// Calls a unary method of a stub with the standard deadline, e.g.
//   Call<v1::Model>(connection, &v1::CompressionService::Stub::GetModel, request)
template <typename Response, typename Request, typename Stub>
absl::StatusOr<Response> CallOn(Stub& stub,
                                grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                             Response*),
                                const Request& request) {
  grpc::ClientContext context;
  SetUnaryDeadline(&context);
  Response response;
  grpc::Status status = (stub.*method)(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

template <typename Response, typename Request, typename Method>
absl::StatusOr<Response> Call(Connection& connection, Method method, const Request& request) {
  return CallOn<Response, Request>(connection.stub(), method, request);
}

template <typename Response, typename Request, typename Method>
absl::StatusOr<Response> CallAdmin(Connection& connection, Method method, const Request& request) {
  return CallOn<Response, Request>(connection.admin(), method, request);
}

}  // namespace compressd::client
