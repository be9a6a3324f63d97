// Authentication and authorization at the RPC edge: every handler of every
// service starts here (server/auth/permissions.h has the table).
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/auth/authenticator.h"
#include "server/rpc/unary.h"

namespace compressd {

// The call's "authorization" metadata ("" when absent).
inline std::string AuthorizationOf(const grpc::ServerContextBase& ctx) {
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find("authorization");
  return it == metadata.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

inline absl::StatusOr<Principal> AuthorizeCall(Authenticator& auth,
                                               const grpc::ServerContextBase& ctx,
                                               absl::string_view method) {
  return auth.Authorize(AuthorizationOf(ctx), method);
}

// Finishes a unary call with fn(principal) once the caller may call `method`,
// or with UNAUTHENTICATED / PERMISSION_DENIED.
template <typename Fn>
grpc::ServerUnaryReactor* AuthorizedUnary(grpc::CallbackServerContext* ctx, Authenticator& auth,
                                          absl::string_view method, Fn&& fn) {
  absl::StatusOr<Principal> who = AuthorizeCall(auth, *ctx, method);
  if (!who.ok()) return FinishUnary(ctx, who.status());
  return FinishUnary(ctx, fn(*who));
}

// Client-streaming calls that end before reading anything.
template <typename Request>
class FailedReadReactor : public grpc::ServerReadReactor<Request> {
 public:
  explicit FailedReadReactor(const absl::Status& status) { this->Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace compressd
