// The single conversion point between absl::Status and grpc::Status, used at
// the RPC edge only (server handlers and the client's call sites).
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace compressd {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace compressd
