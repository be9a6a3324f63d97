// Helpers that keep the unary callback handlers to one line each.
#pragma once

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/grpc_status.h"

namespace compressd {

// Finishes a unary call with `status` on the context's default reactor.
inline grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx,
                                             const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Moves the value of `result` into *out; returns its status.
template <typename T>
absl::Status AssignTo(absl::StatusOr<T> result, T* out) {
  if (!result.ok()) {
    return result.status();
  }
  *out = *std::move(result);
  return absl::OkStatus();
}

// Streaming reactors that end before sending anything (e.g. NOT_FOUND).
template <typename Response>
class FailedWriteReactor : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FailedWriteReactor(const absl::Status& status) { this->Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace compressd
