// ServerWriteReactor that streams one blob from the BlobStore, starting at a
// byte offset, in 1 MiB chunks: DownloadArtifact (preceded by the Artifact
// info message) and FetchBlob. Each chunk is read when the previous write
// completed, so at most one chunk is held in memory per stream.
//
// Thread-safe: OnCancel may run concurrently with OnWriteDone; state is
// guarded by a mutex.
#pragma once

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "compressd/v1/compressd.pb.h"
#include "compressd/v1/worker.pb.h"
#include "server/store/blob_store.h"

namespace compressd {

inline constexpr size_t kBlobChunkBytes = 1 << 20;

// How a chunk of bytes is wrapped in each response type.
inline void SetChunk(std::string data, v1::DownloadArtifactResponse* out) {
  out->set_chunk(std::move(data));
}
inline void SetChunk(std::string data, v1::BlobChunk* out) { out->set_data(std::move(data)); }

template <typename Response>
class BlobStreamReactor : public grpc::ServerWriteReactor<Response> {
 public:
  // Streams `first` (if any), then the blob `sha256` from `offset` (which the
  // caller checked is <= size). Adds each chunk's size to `bytes_counter` if set.
  BlobStreamReactor(const BlobStore& blobs, std::string sha256, uint64_t offset,
                    std::optional<Response> first, prometheus::Counter* bytes_counter)
      : blobs_(blobs), sha256_(std::move(sha256)), bytes_counter_(bytes_counter), offset_(offset) {
    absl::MutexLock lock(&mu_);
    if (first.has_value()) {
      current_ = *std::move(first);
      writing_ = true;
      this->StartWrite(&current_);
    } else {
      WriteNextLocked();
    }
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok || cancelled_) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "download cancelled"));
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (!writing_) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "download cancelled"));
    }
  }

  void OnDone() override { delete this; }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string data;
    absl::Status status = blobs_.ReadAt(sha256_, offset_, kBlobChunkBytes, &data);
    if (!status.ok()) {
      FinishLocked(ToGrpcStatus(status));
      return;
    }
    if (data.empty()) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    offset_ += data.size();
    if (bytes_counter_ != nullptr) {
      bytes_counter_->Increment(static_cast<double>(data.size()));
    }
    current_.Clear();
    SetChunk(std::move(data), &current_);
    writing_ = true;
    this->StartWrite(&current_);
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) {
      return;
    }
    finished_ = true;
    this->Finish(status);
  }

  const BlobStore& blobs_;
  const std::string sha256_;
  prometheus::Counter* const bytes_counter_;
  absl::Mutex mu_;
  uint64_t offset_ ABSL_GUARDED_BY(mu_);
  Response current_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace compressd
