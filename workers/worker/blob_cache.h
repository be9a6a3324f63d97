// The worker's local content-addressed cache of model files:
// <root>/<sha256> holds a verified blob, <root>/<sha256>.partial a download in
// progress. A finished download is verified against its sha256 before it is
// renamed into place, and a present blob again each time it is handed out: one
// whose content no longer matches is moved to <sha256>.corrupt and fetched
// again. A partial file is resumed from its length. Downloads of the same
// blob by several processes sharing the cache are serialised by flock() on
// the partial file. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "compressd/v1/compressd.pb.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd {

struct BlobCacheOptions {
  int max_attempts = 5;            // fetch attempts per blob (each resumes)
  int64_t initial_backoff_ms = 200;
  int64_t max_backoff_ms = 5000;
};

class BlobCache {
 public:
  // Streams blob `sha256` from `offset`, calling `on_chunk` for each chunk.
  using ChunkFn = std::function<absl::Status(absl::string_view)>;
  using FetchFn =
      std::function<absl::Status(const std::string& sha256, uint64_t offset, const ChunkFn&)>;

  BlobCache(std::string root, BlobCacheOptions options = {});

  // Returns the path of the verified blob for `file`, fetching what is
  // missing. INVALID_ARGUMENT for a malformed sha256; DATA_LOSS when the
  // content does not match its sha256 or size even after a fresh download;
  // CANCELLED once `cancel` is set; otherwise the fetch error after
  // max_attempts (UNAVAILABLE-style errors are retried, resuming).
  absl::StatusOr<std::string> Get(const v1::FileEntry& file, const FetchFn& fetch,
                                  const engine::CancelToken& cancel);

  std::string PathFor(const std::string& sha256) const;
  // Cached blobs found corrupted (and fetched again) since construction.
  int64_t corrupt() const { return corrupt_.load(); }

 private:
  // True if `path` holds `file` (size and sha256); a corrupted one is moved aside.
  absl::StatusOr<bool> Verified(const std::string& path, const v1::FileEntry& file);
  absl::Status Download(int fd, const std::string& partial, const v1::FileEntry& file,
                        const FetchFn& fetch, const engine::CancelToken& cancel);

  const std::string root_;
  const BlobCacheOptions options_;
  std::atomic<int64_t> corrupt_{0};
};

}  // namespace compressd
