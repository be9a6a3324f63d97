// The blob store's fsck: every stored blob re-hashed against its name, and
// every blob a row refers to (Store::ReferencedBlobs) looked for.
//
//   - A blob whose content no longer matches its sha256 (a flipped bit on
//     disk) is quarantined (BlobStore::Quarantine): from then on every read
//     of it answers DATA_LOSS, so no job or download uses it silently.
//   - A referenced blob that is absent (deleted by hand, a lost volume) is
//     reported as missing; it cannot be repaired here.
//
// Run it as a command (`compressd fsck --data-dir DIR`, exit 1 when anything
// is wrong) or periodically inside the server (BlobScrubber:
// --blob-scrub-interval-s, throttled to --blob-scrub-bytes-per-s so a pass
// never starves uploads and downloads of disk bandwidth), counted in
// compressd_blobs_scrubbed_total, compressd_blob_scrub_corrupt_total and
// compressd_blob_scrub_missing.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/metrics/server_metrics.h"
#include "server/store/blob_store.h"
#include "server/store/periodic_pass.h"
#include "server/store/store.h"

namespace compressd {

struct BlobScrubStats {
  int64_t blobs = 0;  // re-hashed
  uint64_t bytes = 0;
  // Digests now quarantined: found by this pass, or earlier and still referenced.
  std::vector<std::string> corrupt;
  std::vector<std::string> missing;  // referenced by a row, not stored
  bool interrupted = false;          // `stop` ended the pass early
};

struct BlobScrubOptions {
  int64_t interval_ms = 24 * 3600 * 1000;  // 0: never (the periodic pass)
  int64_t bytes_per_second = 0;            // 0: as fast as the disk reads
};

// One pass. `stop` (may be null) is asked between blobs; true ends the pass.
absl::StatusOr<BlobScrubStats> ScrubBlobs(Store& store, const BlobStore& blobs,
                                          int64_t bytes_per_second,
                                          const std::function<bool()>& stop = nullptr);

// The pass for the command line: "fsck: ..." lines, one per problem.
std::string DescribeScrub(const BlobScrubStats& stats);

class BlobScrubber {
 public:
  BlobScrubber(Store& store, const BlobStore& blobs, ServerMetrics& metrics,
               BlobScrubOptions options);
  // The first pass runs one interval after Start (the server just started:
  // uploads and jobs come first), then one every interval. No-op for 0.
  void Start() { periodic_.Start(); }
  void Stop() { periodic_.Stop(); }
  // One pass now, counted in the metrics and logged to stderr.
  absl::StatusOr<BlobScrubStats> RunOnce();

 private:
  Store& store_;
  const BlobStore& blobs_;
  ServerMetrics& metrics_;
  const BlobScrubOptions options_;
  PeriodicPass periodic_;
};

}  // namespace compressd
