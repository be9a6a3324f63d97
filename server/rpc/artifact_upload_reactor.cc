#include "server/rpc/artifact_upload_reactor.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/util.h"

namespace compressd {

ArtifactUploadReactor::ArtifactUploadReactor(grpc::CallbackServerContext* ctx, Scheduler& scheduler,
                                             BlobStore& blobs, v1::Artifact* response)
    : ctx_(ctx), scheduler_(scheduler), blobs_(blobs), response_(response) {
  StartRead(&request_);
}

void ArtifactUploadReactor::OnReadDone(bool ok) {
  absl::Status status;
  if (!ok) {
    if (ctx_->IsCancelled()) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "artifact upload cancelled"));
      return;
    }
    status = Commit();
    Finish(ToGrpcStatus(status));
    return;
  }
  status = HandleMessage();
  if (!status.ok()) {
    Finish(ToGrpcStatus(status));
    return;
  }
  StartRead(&request_);
}

absl::Status ArtifactUploadReactor::HandleMessage() {
  switch (request_.kind_case()) {
    case v1::UploadArtifactRequest::kHeader:
      if (writer_ != nullptr) {
        return absl::InvalidArgumentError("header: sent twice");
      }
      return OnHeader(request_.header());
    case v1::UploadArtifactRequest::kChunk:
      if (writer_ == nullptr) {
        return absl::InvalidArgumentError(
            "chunk: received before the header (the header must be the first message)");
      }
      return OnChunk(request_.chunk());
    default:
      return absl::InvalidArgumentError("request: neither header nor chunk is set");
  }
}

absl::Status ArtifactUploadReactor::OnHeader(const v1::UploadArtifactHeader& header) {
  RETURN_IF_ERROR(scheduler_.CheckLease(header.task_id(), header.lease_token()));
  RETURN_IF_ERROR(ValidateRelativePath(header.path(), "header.path"));
  if (!IsSha256Hex(header.sha256())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "header.sha256: expected 64 lowercase hex characters, got \"", header.sha256(), "\""));
  }
  ASSIGN_OR_RETURN(writer_, blobs_.NewWriter());
  header_ = header;
  return absl::OkStatus();
}

absl::Status ArtifactUploadReactor::OnChunk(const std::string& data) {
  if (writer_->bytes_written() + data.size() > header_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("chunk: artifact ", header_.path(),
                                                   " exceeds its declared size of ", header_.size(),
                                                   " bytes at offset ", writer_->bytes_written()));
  }
  return writer_->Append(data);
}

absl::Status ArtifactUploadReactor::Commit() {
  if (writer_ == nullptr) {
    return absl::InvalidArgumentError("header: upload stream was empty");
  }
  // Commit verifies the size and that the digest equals header_.sha256().
  RETURN_IF_ERROR(
      writer_->Commit(header_.size(), header_.sha256(), absl::StrCat("artifact ", header_.path()))
          .status());
  ASSIGN_OR_RETURN(*response_, scheduler_.AddArtifact(header_));
  return absl::OkStatus();
}

}  // namespace compressd
