// ServerWriteReactor that streams one blob from the BlobStore, starting at a
// byte offset, in 1 MiB chunks: DownloadArtifact (preceded by the Artifact
// info message) and FetchBlob. Each chunk is read when the previous write
// completed, so at most one chunk is held in memory per stream.
//
// Every read is verified: the stream hashes the blob as it goes (a resumed
// read hashes the prefix first), and the last chunk is sent only if the
// whole content matches its sha256. A blob that does not is quarantined
// (BlobStore::Quarantine) and the stream ends with DATA_LOSS, so no client
// ever receives a complete corrupted file with status OK.
//
// Thread-safe: OnCancel may run concurrently with OnWriteDone; state is
// guarded by a mutex.
#pragma once

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/sha256.h"
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
    if (absl::Status st = HashPrefixLocked(); !st.ok()) {
      FinishLocked(ToGrpcStatus(st));
      return;
    }
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
  // The blob's size, and the hash of the bytes before the first one sent.
  absl::Status HashPrefixLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::StatusOr<uint64_t> size = blobs_.Size(sha256_);
    if (!size.ok()) return size.status();
    size_ = *size;
    std::string data;
    for (uint64_t at = 0; at < offset_; at += data.size()) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(kBlobChunkBytes, offset_ - at));
      if (absl::Status st = blobs_.ReadAt(sha256_, at, want, &data); !st.ok()) return st;
      if (data.empty()) break;
      hash_.Update(data);
    }
    return absl::OkStatus();
  }

  // DATA_LOSS (and the blob quarantined) unless the hashed content is the blob's.
  absl::Status CheckDigestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return blobs_.CheckContent(sha256_, hash_.HexDigest());
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string data;
    absl::Status status = blobs_.ReadAt(sha256_, offset_, kBlobChunkBytes, &data);
    if (!status.ok()) {
      FinishLocked(ToGrpcStatus(status));
      return;
    }
    // Before the last bytes leave (or at the end of an empty blob): the digest.
    if (!digest_checked_) hash_.Update(data);
    if (!digest_checked_ && (offset_ + data.size() >= size_ || data.empty())) {
      digest_checked_ = true;
      if (absl::Status st = CheckDigestLocked(); !st.ok()) {
        FinishLocked(ToGrpcStatus(st));
        return;
      }
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
  uint64_t size_ ABSL_GUARDED_BY(mu_) = 0;
  Sha256 hash_ ABSL_GUARDED_BY(mu_);
  bool digest_checked_ ABSL_GUARDED_BY(mu_) = false;
  Response current_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace compressd
