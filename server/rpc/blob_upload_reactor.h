// ServerReadReactor for the worker's client-streaming uploads of one blob
// (UploadArtifact, PutCheckpoint): a header (lease, name, size, sha256) first,
// then the bytes into a BlobStore::Writer; at end of stream the blob is
// verified (size, and sha256: INVALID_ARGUMENT on a mismatch) and committed,
// then recorded by the Kind. A cancelled call never records anything (the
// read loop and message order: upload_stream_reactor.h).
//
// A Kind names the message types and supplies the rules:
//   using Request = ...;   // oneof kind { Header header = 1; bytes chunk = 2; }
//   using Header = ...;    // task_id, lease_token, size, sha256
//   using Response = ...;
//   absl::Status Accept(const Header&);               // before any byte is stored
//   absl::StatusOr<Response> Record(const Header&);   // after the blob is committed
//   std::string What(const Header&);                  // "artifact out/x" for messages
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "server/rpc/upload_stream_reactor.h"
#include "server/store/blob_store.h"

namespace compressd {

template <typename Kind>
class BlobUploadReactor : public UploadStreamReactor<typename Kind::Request> {
 public:
  using Request = typename Kind::Request;
  using Header = typename Kind::Header;
  using Response = typename Kind::Response;

  // `ctx` and `response` belong to the call and outlive the reactor.
  BlobUploadReactor(grpc::CallbackServerContext* ctx, UploadIdleMonitor* monitor, Kind kind,
                    BlobStore& blobs, Response* response)
      : UploadStreamReactor<Request>(ctx, monitor),
        kind_(std::move(kind)),
        blobs_(blobs),
        response_(response) {
    this->StartReading();
  }

 private:
  absl::Status OnHeader(const Request& request) override {
    const Header& header = request.header();
    RETURN_IF_ERROR(kind_.Accept(header));
    if (!IsSha256Hex(header.sha256())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "header.sha256: expected 64 lowercase hex characters, got \"", header.sha256(), "\""));
    }
    ASSIGN_OR_RETURN(writer_, blobs_.NewWriter());
    header_ = header;
    return absl::OkStatus();
  }

  absl::Status OnChunk(const Request& request) override {
    const std::string& data = request.chunk();
    if (writer_->bytes_written() + data.size() > header_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("chunk: ", kind_.What(header_), " exceeds its declared size of ",
                       header_.size(), " bytes at offset ", writer_->bytes_written()));
    }
    return writer_->Append(data);
  }

  absl::Status OnEndOfStream() override {
    RETURN_IF_ERROR(
        writer_->Commit(header_.size(), header_.sha256(), kind_.What(header_)).status());
    ASSIGN_OR_RETURN(*response_, kind_.Record(header_));
    return absl::OkStatus();
  }

  Kind kind_;
  BlobStore& blobs_;
  Response* const response_;
  Header header_;
  std::unique_ptr<BlobStore::Writer> writer_;  // set once the header was accepted
};

}  // namespace compressd
