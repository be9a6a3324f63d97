// ServerReadReactor for the client-streaming uploads (UploadModel,
// UploadDataset): feeds each message to an UploadSession and finishes the
// RPC with the first error, or with the session's result at end of stream.
// The header must be the first message and appear once.
//
// Thread-safety: gRPC serialises the reactions of one stream (at most one
// read outstanding), so the reactor needs no lock of its own.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/grpc_status.h"
#include "server/models/model_registry.h"
#include "server/rpc/upload_message.h"

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
class UploadReactor : public grpc::ServerReadReactor<typename Kind::Request> {
 public:
  using Request = typename Kind::Request;
  using Result = typename Kind::Result;

  // `ctx` and `result` belong to the call and outlive the reactor.
  UploadReactor(grpc::CallbackServerContext* ctx, std::unique_ptr<UploadSession> session,
                Result* result)
      : ctx_(ctx), session_(std::move(session)), result_(result) {
    this->StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      FinishStream();
      return;
    }
    absl::Status status = HandleMessage();
    if (!status.ok()) {
      this->Finish(ToGrpcStatus(status));
      return;
    }
    this->StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  absl::Status HandleMessage() {
    return RouteUploadMessage(
        request_, seen_header_, [this](const auto&) { return Kind::OnHeader(*session_, request_); },
        [this](const auto& chunk) { return session_->OnChunk(chunk); });
  }

  // End of the client's stream: a cancelled call never commits anything.
  void FinishStream() {
    if (ctx_->IsCancelled()) {
      this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "upload cancelled by the client"));
      return;
    }
    if (!seen_header_) {
      this->Finish(ToGrpcStatus(absl::InvalidArgumentError("header: upload stream was empty")));
      return;
    }
    absl::StatusOr<Result> result = Kind::Finish(*session_);
    if (!result.ok()) {
      this->Finish(ToGrpcStatus(result.status()));
      return;
    }
    *result_ = *std::move(result);
    this->Finish(grpc::Status::OK);
  }

  grpc::CallbackServerContext* const ctx_;
  std::unique_ptr<UploadSession> session_;
  Result* const result_;
  Request request_;
  bool seen_header_ = false;
};

}  // namespace compressd
