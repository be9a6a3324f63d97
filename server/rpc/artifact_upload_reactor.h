// ServerReadReactor for WorkerService.UploadArtifact: the header (lease,
// relative path, size, sha256) first, then the file's bytes into a
// BlobStore::Writer; at end of stream the blob is verified and committed and
// recorded as an artifact of the task's job by the Scheduler.
//
// Thread-safety: gRPC serialises the reactions of one stream (one read
// outstanding at a time), so the reactor needs no lock.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/status/status.h"
#include "compressd/v1/worker.pb.h"
#include "server/scheduler/scheduler.h"
#include "server/store/blob_store.h"

namespace compressd {

class ArtifactUploadReactor : public grpc::ServerReadReactor<v1::UploadArtifactRequest> {
 public:
  ArtifactUploadReactor(grpc::CallbackServerContext* ctx, Scheduler& scheduler, BlobStore& blobs,
                        v1::Artifact* response);

  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  absl::Status HandleMessage();
  absl::Status OnHeader(const v1::UploadArtifactHeader& header);
  absl::Status OnChunk(const std::string& data);
  absl::Status Commit();

  grpc::CallbackServerContext* const ctx_;
  Scheduler& scheduler_;
  BlobStore& blobs_;
  v1::Artifact* const response_;
  v1::UploadArtifactRequest request_;
  v1::UploadArtifactHeader header_;
  std::unique_ptr<BlobStore::Writer> writer_;  // set once the header was accepted
};

}  // namespace compressd
