// The read loop every client-streaming upload shares (UploadReactor: models,
// datasets; BlobUploadReactor: artifacts, checkpoints). A request is
// `oneof kind { Header header = 1; Chunk chunk = 2; }` (chunk: bytes, or a
// message); the header comes first and once, then the chunks:
//   - each message goes to OnHeader or OnChunk; the first error finishes the
//     RPC with it (INVALID_ARGUMENT for a second header, a chunk before the
//     header, or a message with neither);
//   - at the end of the stream: CANCELLED if the client cancelled (nothing is
//     committed), INVALID_ARGUMENT for a stream without a header, else the
//     status of OnEndOfStream;
//   - a stream with no message for the monitor's idle timeout is cancelled
//     (upload_idle_monitor.h) and ends like a client cancel.
// The reactor deletes itself when the RPC is done.
//
// Thread-safety: gRPC serialises the reactions of one stream (at most one
// read outstanding), so the reactor needs no lock.
#pragma once

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "common/grpc_status.h"
#include "server/rpc/upload_idle_monitor.h"

namespace compressd {

template <typename Request>
class UploadStreamReactor : public grpc::ServerReadReactor<Request> {
 public:
  void OnReadDone(bool ok) final {
    if (monitor_ != nullptr) monitor_->Touch(monitor_id_);
    if (!ok) {
      if (monitor_ != nullptr && monitor_->TimedOut(monitor_id_)) {
        this->Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                  "upload stream idle for too long; cancelled"));
      } else if (ctx_->IsCancelled()) {
        this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "upload cancelled by the client"));
      } else if (!seen_header_) {
        this->Finish(ToGrpcStatus(absl::InvalidArgumentError("header: upload stream was empty")));
      } else {
        this->Finish(ToGrpcStatus(OnEndOfStream()));
      }
      return;
    }
    absl::Status status = Route();
    if (!status.ok()) {
      this->Finish(ToGrpcStatus(status));
      return;
    }
    this->StartRead(&request_);
  }

  void OnDone() final {
    if (monitor_ != nullptr) monitor_->Unregister(monitor_id_);
    delete this;
  }

 protected:
  // `ctx` belongs to the call and outlives the reactor; `monitor` (may be
  // null) outlives every stream.
  UploadStreamReactor(grpc::CallbackServerContext* ctx, UploadIdleMonitor* monitor)
      : ctx_(ctx), monitor_(monitor), monitor_id_(monitor ? monitor->Register(ctx) : 0) {}
  // The last statement of the derived constructor: the first read may
  // complete on another thread at once.
  void StartReading() { this->StartRead(&request_); }

  virtual absl::Status OnHeader(const Request& request) = 0;  // request.header()
  virtual absl::Status OnChunk(const Request& request) = 0;   // request.chunk()
  virtual absl::Status OnEndOfStream() = 0;

 private:
  absl::Status Route() {
    switch (request_.kind_case()) {
      case Request::kHeader:
        if (seen_header_) return absl::InvalidArgumentError("header: sent twice");
        seen_header_ = true;
        return OnHeader(request_);
      case Request::kChunk:
        if (!seen_header_) {
          return absl::InvalidArgumentError(
              "chunk: received before the header (the header must be the first message)");
        }
        return OnChunk(request_);
      default:
        return absl::InvalidArgumentError("request: neither header nor chunk is set");
    }
  }

  grpc::CallbackServerContext* const ctx_;
  UploadIdleMonitor* const monitor_;
  const int64_t monitor_id_;
  Request request_;
  bool seen_header_ = false;
};

}  // namespace compressd
