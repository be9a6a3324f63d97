// ServerReadReactor for the client-streaming uploads (UploadModel,
// UploadDataset): feeds each message to an UploadSession and finishes the
// RPC with the first error, or with the session's result at end of stream
// (the read loop and message order: upload_stream_reactor.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/models/model_registry.h"
#include "server/rpc/upload_stream_reactor.h"

namespace compressd {

// How one upload kind maps onto an UploadSession.
struct ModelUploadKind {
  using Request = v1::UploadModelRequest;
  using Result = v1::Model;
  static absl::Status OnHeader(UploadSession& s, const Request& r) {
    return s.OnModelHeader(r.header());
  }
  static absl::StatusOr<Result> Finish(UploadSession& s) { return s.FinishModel(); }
};

struct DatasetUploadKind {
  using Request = v1::UploadDatasetRequest;
  using Result = v1::Dataset;
  static absl::Status OnHeader(UploadSession& s, const Request& r) {
    return s.OnDatasetHeader(r.header());
  }
  static absl::StatusOr<Result> Finish(UploadSession& s) { return s.FinishDataset(); }
};

template <typename Kind>
class UploadReactor : public UploadStreamReactor<typename Kind::Request> {
 public:
  using Request = typename Kind::Request;
  using Result = typename Kind::Result;

  // `ctx` and `result` belong to the call and outlive the reactor.
  // `on_success` (may be empty) hears of the stored result (the audit trail).
  UploadReactor(grpc::CallbackServerContext* ctx, UploadIdleMonitor* monitor,
                std::unique_ptr<UploadSession> session, Result* result,
                std::function<void(const Result&)> on_success = {})
      : UploadStreamReactor<Request>(ctx, monitor),
        session_(std::move(session)),
        result_(result),
        on_success_(std::move(on_success)) {
    this->StartReading();
  }

 private:
  absl::Status OnHeader(const Request& request) override {
    return Kind::OnHeader(*session_, request);
  }
  absl::Status OnChunk(const Request& request) override {
    return session_->OnChunk(request.chunk());
  }
  absl::Status OnEndOfStream() override {
    absl::StatusOr<Result> result = Kind::Finish(*session_);
    if (!result.ok()) return result.status();
    *result_ = *std::move(result);
    if (on_success_) on_success_(*result_);
    return absl::OkStatus();
  }

  std::unique_ptr<UploadSession> session_;
  Result* const result_;
  std::function<void(const Result&)> on_success_;
};

}  // namespace compressd
