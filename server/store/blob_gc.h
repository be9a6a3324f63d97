// Garbage collection of the blob store: deletes the blobs no row refers to
// (Store::ReferencedBlobs: model and dataset files, artifacts, checkpoints),
// which are the checkpoints and part results of finished jobs, the files of
// deleted models, and uploads that failed after their blob was stored.
//
// A blob is deleted only if it was last stored more than `grace_ms` ago
// (BlobStore::RemoveIfOlder): an upload stores its blobs before the row that
// refers to them (a model's files before the model), so a young unreferenced
// blob may be about to be referenced. The blobs are listed before the
// references are read, and a blob stored again is young again, so a blob
// that gains a reference during a pass is never deleted.
//
// BlobCollector runs a pass every `interval_ms` on its own thread
// (compressd --blob-gc-interval-s, --blob-gc-grace-s: at least an hour, and
// more than the longest upload). Thread-safe.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "server/metrics/server_metrics.h"
#include "server/store/blob_store.h"
#include "server/store/periodic_pass.h"
#include "server/store/store.h"

namespace compressd {

struct BlobGcStats {
  int64_t blobs = 0;       // stored when the pass began
  int64_t referenced = 0;  // of those, referenced by a row
  int64_t young = 0;       // unreferenced but stored within the grace period
  int64_t removed = 0;
  uint64_t removed_bytes = 0;
};

// One pass at time `now_ms` (ms since the Unix epoch).
absl::StatusOr<BlobGcStats> CollectBlobs(Store& store, BlobStore& blobs, int64_t now_ms,
                                         int64_t grace_ms);

struct BlobCollectorOptions {
  int64_t interval_ms = 3600 * 1000;  // 0: never
  int64_t grace_ms = 24 * 3600 * 1000;
};

class BlobCollector {
 public:
  BlobCollector(Store& store, BlobStore& blobs, ServerMetrics& metrics,
                BlobCollectorOptions options);
  // The first pass runs a minute after Start (or one interval, if shorter),
  // then one every interval. No-op for interval 0.
  void Start() { periodic_.Start(); }
  void Stop() { periodic_.Stop(); }
  // One pass now, counted in the metrics and logged to stderr.
  absl::StatusOr<BlobGcStats> RunOnce();

 private:
  Store& store_;
  BlobStore& blobs_;
  ServerMetrics& metrics_;
  const BlobCollectorOptions options_;
  PeriodicPass periodic_;
};

}  // namespace compressd
