#include "server/store/blob_scrub.h"

#include <chrono>
#include <cstdio>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd {
namespace {

// Sleeps as needed so that `bytes` read since `start` stay at or under the rate.
class Throttle {
 public:
  explicit Throttle(int64_t bytes_per_second)
      : rate_(bytes_per_second), start_(std::chrono::steady_clock::now()) {}
  void Read(size_t n) {
    if (rate_ <= 0) return;
    read_ += n;
    const auto due = start_ + std::chrono::microseconds(static_cast<int64_t>(
                                  static_cast<double>(read_) * 1e6 / static_cast<double>(rate_)));
    std::this_thread::sleep_until(due);
  }

 private:
  const int64_t rate_;
  const std::chrono::steady_clock::time_point start_;
  uint64_t read_ = 0;
};

}  // namespace

absl::StatusOr<BlobScrubStats> ScrubBlobs(Store& store, const BlobStore& blobs,
                                          int64_t bytes_per_second,
                                          const std::function<bool()>& stop) {
  BlobScrubStats stats;
  Throttle throttle(bytes_per_second);
  for (const BlobStore::BlobInfo& blob : blobs.List()) {
    if (stop && stop()) {
      stats.interrupted = true;
      return stats;
    }
    const absl::Status verified = blobs.Verify(blob.sha256, [&](size_t n) { throttle.Read(n); });
    if (absl::IsNotFound(verified)) continue;  // collected meanwhile
    ++stats.blobs;
    stats.bytes += blob.size;
    if (absl::IsDataLoss(verified)) {
      stats.corrupt.push_back(blob.sha256);
    } else if (!verified.ok()) {
      return verified;  // an I/O error is the disk's, not the blob's: say so
    }
  }
  // Referenced blobs that cannot be read: missing (neither stored nor
  // quarantined), or quarantined by an earlier pass or read and still
  // referenced (corrupt again, until the model or job is deleted). A blob is
  // stored before the row that refers to it, so reading the rows after the
  // listing cannot see a reference to a blob that is on its way.
  ASSIGN_OR_RETURN(const std::set<std::string> referenced, store.ReferencedBlobs());
  const std::set<std::string> found_corrupt(stats.corrupt.begin(), stats.corrupt.end());
  for (const std::string& sha256 : referenced) {
    const absl::Status st = blobs.Size(sha256).status();
    if (absl::IsNotFound(st)) stats.missing.push_back(sha256);
    if (absl::IsDataLoss(st) && found_corrupt.count(sha256) == 0) stats.corrupt.push_back(sha256);
  }
  return stats;
}

std::string DescribeScrub(const BlobScrubStats& stats) {
  std::string out =
      absl::StrCat("fsck: ", stats.blobs, " blobs (", stats.bytes, " bytes) re-hashed; ",
                   stats.corrupt.size(), " corrupt (quarantined), ", stats.missing.size(),
                   " missing", stats.interrupted ? " (interrupted)" : "", "\n");
  for (const std::string& d : stats.corrupt) {
    absl::StrAppend(&out, "fsck: corrupt: blob ", d, " (moved to blobs/quarantine/)\n");
  }
  for (const std::string& d : stats.missing) {
    absl::StrAppend(&out, "fsck: missing: blob ", d, " is referenced but not stored\n");
  }
  return out;
}

BlobScrubber::BlobScrubber(Store& store, const BlobStore& blobs, ServerMetrics& metrics,
                           BlobScrubOptions options)
    : store_(store),
      blobs_(blobs),
      metrics_(metrics),
      options_(options),
      periodic_(options.interval_ms, options.interval_ms, [this] {
        // One replica at a time (several share one database and bucket).
        (void)store_.RunExclusive(kBlobScrubDuty, [this] { (void)RunOnce(); });
      }) {}

absl::StatusOr<BlobScrubStats> BlobScrubber::RunOnce() {
  absl::StatusOr<BlobScrubStats> stats = ScrubBlobs(store_, blobs_, options_.bytes_per_second,
                                                    [this] { return periodic_.stopping(); });
  if (!stats.ok()) {
    std::fprintf(stderr, "compressd: blob scrub failed: %s\n", stats.status().ToString().c_str());
    return stats;
  }
  metrics_.blobs_scrubbed().Increment(static_cast<double>(stats->blobs));
  metrics_.blob_scrub_corrupt().Increment(static_cast<double>(stats->corrupt.size()));
  metrics_.blob_scrub_missing().Set(static_cast<double>(stats->missing.size()));
  if (!stats->corrupt.empty() || !stats->missing.empty()) {
    std::fprintf(stderr, "compressd: blob scrub: %s", DescribeScrub(*stats).c_str());
  }
  return stats;
}

}  // namespace compressd
