// Where a BlobStore keeps blobs durably when its local directory is only a
// cache: an object store shared by every compressd replica (s3/s3_blobs.h).
// Blobs are named by their sha256; a quarantined blob is kept apart under
// its own name. Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace compressd {

struct RemoteBlobInfo {
  std::string sha256;
  uint64_t size = 0;
  int64_t mtime_ms = 0;  // when it was last stored
};

class RemoteBlobs {
 public:
  virtual ~RemoteBlobs() = default;
  // Stores the verified local file `path` as blob `sha256` (again: its
  // mtime becomes now).
  virtual absl::Status Upload(const std::string& sha256, const std::string& path) = 0;
  // NOT_FOUND if absent; `quarantined`: the quarantined copy's.
  virtual absl::StatusOr<uint64_t> Size(const std::string& sha256, bool quarantined = false) = 0;
  // Size and when it was last stored; NOT_FOUND if absent.
  virtual absl::StatusOr<RemoteBlobInfo> Stat(const std::string& sha256) = 0;
  virtual absl::StatusOr<std::string> Read(const std::string& sha256, uint64_t offset,
                                           uint64_t length) = 0;
  virtual absl::Status Download(const std::string& sha256, const std::string& path) = 0;
  virtual absl::StatusOr<std::vector<RemoteBlobInfo>> List() = 0;
  virtual absl::Status Remove(const std::string& sha256) = 0;
  // Moves the blob to the quarantine (Size(sha256) NOT_FOUND afterwards).
  virtual absl::Status Quarantine(const std::string& sha256) = 0;
  // For messages: "s3://bucket/prefix at http://host:port".
  virtual std::string Describe() const = 0;
};

}  // namespace compressd
