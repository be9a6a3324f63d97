// ServerReadReactor for the worker's client-streaming uploads of one blob
// (UploadArtifact, PutCheckpoint): a header (lease, name, size, sha256) first,
// then the bytes into a BlobStore::Writer; at end of stream the blob is
// verified (size, and sha256: INVALID_ARGUMENT on a mismatch) and committed,
// then recorded by the Kind. A cancelled call never records anything.
//
// A Kind names the message types and supplies the rules:
//   using Request = ...;   // oneof kind { Header header = 1; bytes chunk = 2; }
//   using Header = ...;    // task_id, lease_token, size, sha256
//   using Response = ...;
//   absl::Status Accept(const Header&);               // before any byte is stored
//   absl::StatusOr<Response> Record(const Header&);   // after the blob is committed
//   std::string What(const Header&);                  // "artifact out/x" for messages
//
// Thread-safety: gRPC serialises the reactions of one stream (one read
// outstanding at a time), so the reactor needs no lock.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "server/rpc/upload_message.h"
#include "server/store/blob_store.h"

namespace compressd {

template <typename Kind>
class BlobUploadReactor : public grpc::ServerReadReactor<typename Kind::Request> {
 public:
  using Request = typename Kind::Request;
  using Header = typename Kind::Header;
  using Response = typename Kind::Response;

  // `ctx` and `response` belong to the call and outlive the reactor.
  BlobUploadReactor(grpc::CallbackServerContext* ctx, Kind kind, BlobStore& blobs,
                    Response* response)
      : ctx_(ctx), kind_(std::move(kind)), blobs_(blobs), response_(response) {
    this->StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (ctx_->IsCancelled()) {
        this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "upload cancelled by the client"));
        return;
      }
      this->Finish(ToGrpcStatus(Commit()));
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
        request_, seen_header_, [this](const Header& header) { return OnHeader(header); },
        [this](const std::string& chunk) { return OnChunk(chunk); });
  }

  absl::Status OnHeader(const Header& header) {
    RETURN_IF_ERROR(kind_.Accept(header));
    if (!IsSha256Hex(header.sha256())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header.sha256: expected 64 lowercase hex characters, got \"", header.sha256(), "\""));
    }
    ASSIGN_OR_RETURN(writer_, blobs_.NewWriter());
    header_ = header;
    return absl::OkStatus();
  }

  absl::Status OnChunk(const std::string& data) {
    if (writer_->bytes_written() + data.size() > header_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("chunk: ", kind_.What(header_), " exceeds its declared size of ",
                       header_.size(), " bytes at offset ", writer_->bytes_written()));
    }
    return writer_->Append(data);
  }

  absl::Status Commit() {
    if (!seen_header_) return absl::InvalidArgumentError("header: upload stream was empty");
    RETURN_IF_ERROR(
        writer_->Commit(header_.size(), header_.sha256(), kind_.What(header_)).status());
    ASSIGN_OR_RETURN(*response_, kind_.Record(header_));
    return absl::OkStatus();
  }

  grpc::CallbackServerContext* const ctx_;
  Kind kind_;
  BlobStore& blobs_;
  Response* const response_;
  Request request_;
  Header header_;
  bool seen_header_ = false;
  std::unique_ptr<BlobStore::Writer> writer_;  // set once the header was accepted
};

}  // namespace compressd
