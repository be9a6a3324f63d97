#include "server/store/blob_gc.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/status_macros.h"
#include "common/util.h"

namespace compressd {

absl::StatusOr<BlobGcStats> CollectBlobs(Store& store, BlobStore& blobs, int64_t now_ms,
                                         int64_t grace_ms) {
  const std::vector<BlobStore::BlobInfo> stored = blobs.List();  // before the references
  ASSIGN_OR_RETURN(const std::set<std::string> referenced, store.ReferencedBlobs());
  const int64_t cutoff_ms = now_ms - grace_ms;
  BlobGcStats stats;
  stats.blobs = static_cast<int64_t>(stored.size());
  for (const BlobStore::BlobInfo& blob : stored) {
    if (referenced.count(blob.sha256) > 0) {
      ++stats.referenced;
      continue;
    }
    ASSIGN_OR_RETURN(bool removed, blobs.RemoveIfOlder(blob.sha256, cutoff_ms));
    if (removed) {
      ++stats.removed;
      stats.removed_bytes += blob.size;
    } else {
      ++stats.young;
    }
  }
  return stats;
}

BlobCollector::BlobCollector(Store& store, BlobStore& blobs, ServerMetrics& metrics,
                             BlobCollectorOptions options)
    : store_(store),
      blobs_(blobs),
      metrics_(metrics),
      options_(options),
      periodic_(options.interval_ms, std::min<int64_t>(options.interval_ms, 60 * 1000),
                // One replica at a time (several share one database and bucket).
                [this] { (void)store_.RunExclusive(kBlobGcDuty, [this] { (void)RunOnce(); }); }) {}

absl::StatusOr<BlobGcStats> BlobCollector::RunOnce() {
  absl::StatusOr<BlobGcStats> stats = CollectBlobs(store_, blobs_, NowMs(), options_.grace_ms);
  if (!stats.ok()) {
    std::fprintf(stderr, "compressd: blob garbage collection failed: %s\n",
                 stats.status().ToString().c_str());
    return stats;
  }
  metrics_.blobs_collected().Increment(static_cast<double>(stats->removed));
  metrics_.blob_bytes_collected().Increment(static_cast<double>(stats->removed_bytes));
  if (stats->removed > 0) {
    std::fprintf(stderr,
                 "compressd: blob garbage collection: %lld of %lld blobs deleted (%llu bytes); "
                 "%lld referenced, %lld unreferenced within the grace period\n",
                 static_cast<long long>(stats->removed), static_cast<long long>(stats->blobs),
                 static_cast<unsigned long long>(stats->removed_bytes),
                 static_cast<long long>(stats->referenced), static_cast<long long>(stats->young));
  }
  return stats;
}

}  // namespace compressd
