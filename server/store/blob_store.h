// Content-addressed blob store on the local file system, optionally backed
// by an object store shared between replicas (RemoteBlobs, e.g. S3).
//
// Layout: <root>/sha256/<first two hex chars>/<64 hex chars>. A blob is written
// to <root>/tmp/ first, its size and sha256 verified, then renamed into place,
// so a visible blob is always complete; the same content stored twice occupies
// one file. Storing a blob (again) sets its file's modification time to now,
// which is what RemoveIfOlder (the garbage collector, blob_gc.h) looks at.
//
// With a remote: the object store is the source of truth and the local
// directory a cache. A verified blob is published locally, then uploaded
// (the commit fails, leaving nothing, if the upload does); lookups and reads
// of a blob this process has not cached go to the remote (ranged reads);
// List, TotalBytes, RemoveIfOlder and Quarantine act on the remote (and the
// cache). So every replica sees every blob another one stored.
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/sha256.h"
#include "server/store/remote_blobs.h"

namespace compressd {

class BlobStore {
 public:
  // Creates the directories under `root` if needed. `remote`: the durable
  // store behind the local cache (null: the local directory is the store).
  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(
      const std::string& root, std::unique_ptr<RemoteBlobs> remote = nullptr);

  // Streaming writer. Not thread-safe; one per upload. Destroying an
  // uncommitted writer deletes its temporary file.
  class Writer {
   public:
    virtual ~Writer() = default;
    virtual absl::Status Append(std::string_view data) = 0;
    virtual uint64_t bytes_written() const = 0;
    // Verifies that exactly `expected_size` bytes with digest `expected_sha256`
    // were written (INVALID_ARGUMENT naming `what` otherwise), then publishes
    // the blob. Returns its sha256.
    virtual absl::StatusOr<std::string> Commit(uint64_t expected_size,
                                               const std::string& expected_sha256,
                                               std::string_view what) = 0;
  };
  absl::StatusOr<std::unique_ptr<Writer>> NewWriter();

  // Stores a whole buffer; returns its sha256.
  absl::StatusOr<std::string> Put(std::string_view data);

  // Every lookup below treats a malformed digest as absent (Has) or
  // INVALID_ARGUMENT (Size, ReadAt).
  bool Has(const std::string& sha256) const;
  // NOT_FOUND if absent.
  absl::StatusOr<uint64_t> Size(const std::string& sha256) const;
  // Path of the blob's file (whether or not it exists); empty if `sha256` is
  // not 64 lowercase hex characters, so a request can never name another file.
  // With a remote, a blob stored by another replica is there only after
  // EnsureLocal.
  std::string PathFor(const std::string& sha256) const;
  // With a remote: downloads the blob into the local cache unless it is
  // there (NOT_FOUND if absent everywhere). Without one: NOT_FOUND unless present.
  absl::Status EnsureLocal(const std::string& sha256) const;
  // Reads up to `max_bytes` starting at `offset` into *out (empty at EOF).
  // NOT_FOUND if absent, OUT_OF_RANGE if offset > size.
  absl::Status ReadAt(const std::string& sha256, uint64_t offset, size_t max_bytes,
                      std::string* out) const;
  // Sum of the sizes of all stored blobs (walks the directory tree).
  uint64_t TotalBytes() const;
  // Moves blob `sha256`, found not to match its digest, to
  // <root>/quarantine/<sha256>: kept for inspection, and every later lookup
  // (Size, ReadAt) answers DATA_LOSS instead of serving it.
  absl::Status Quarantine(const std::string& sha256) const;
  // OK when `actual_sha256` (the digest of what was read of blob `sha256`)
  // is its name; else the blob is quarantined and the answer is DATA_LOSS.
  absl::Status CheckContent(const std::string& sha256, const std::string& actual_sha256) const;
  // Re-hashes blob `sha256` from disk and CheckContent()s it; NOT_FOUND if
  // absent. `on_read(n)` runs after each chunk of n bytes (the scrub's
  // throttle; may be null).
  absl::Status Verify(const std::string& sha256,
                      const std::function<void(size_t)>& on_read = nullptr) const;

  struct BlobInfo {
    std::string sha256;
    uint64_t size = 0;
    int64_t mtime_ms = 0;  // when it was last stored, ms since the Unix epoch
  };
  // Every stored blob (walks the directory tree; files that are not blobs
  // are skipped).
  std::vector<BlobInfo> List() const;
  // Deletes blob `sha256` if it was last stored before `cutoff_ms`; whether
  // it did. Serialised with publishing, so a blob stored again concurrently
  // is either kept or published anew after the removal, never lost.
  absl::StatusOr<bool> RemoveIfOlder(const std::string& sha256, int64_t cutoff_ms);

 private:
  friend class BlobFileWriter;
  BlobStore(std::string root, std::unique_ptr<RemoteBlobs> remote)
      : root_(std::move(root)), remote_(std::move(remote)) {}
  bool HasLocal(const std::string& sha256) const;
  absl::StatusOr<std::vector<BlobInfo>> ListRemote() const;
  // Renames the verified temporary file onto blob `digest`'s path.
  absl::Status Publish(const std::string& tmp_path, const std::string& digest);

  std::string QuarantinePath(const std::string& sha256) const;

  std::string root_;
  const std::unique_ptr<RemoteBlobs> remote_;  // null: local only
  mutable absl::Mutex publish_mu_;  // publishing, removal and quarantine
};

}  // namespace compressd
