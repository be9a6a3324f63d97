#include "server/store/s3/s3_blobs.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace compressd::s3 {

absl::StatusOr<std::unique_ptr<S3Blobs>> S3Blobs::Open(Config config, std::string prefix) {
  std::unique_ptr<S3Blobs> blobs(new S3Blobs(std::move(config), std::move(prefix)));
  absl::Status bucket = blobs->client_.EnsureBucket();
  if (!bucket.ok()) {
    return absl::Status(bucket.code(), absl::StrCat("--blobs ", blobs->Describe(),
                                                    ": cannot use the bucket: ", bucket.message()));
  }
  return blobs;
}

std::string S3Blobs::Key(const std::string& sha256) const {
  return absl::StrCat(prefix_, "sha256/", sha256.substr(0, 2), "/", sha256);
}

std::string S3Blobs::QuarantineKey(const std::string& sha256) const {
  return absl::StrCat(prefix_, "quarantine/", sha256);
}

std::string S3Blobs::Describe() const {
  return absl::StrCat("s3://", client_.config().bucket, "/", prefix_, " at ",
                      client_.config().endpoint);
}

absl::Status S3Blobs::Upload(const std::string& sha256, const std::string& path) {
  return client_.PutFile(Key(sha256), path);
}

absl::StatusOr<uint64_t> S3Blobs::Size(const std::string& sha256, bool quarantined) {
  return client_.Size(quarantined ? QuarantineKey(sha256) : Key(sha256));
}

absl::StatusOr<RemoteBlobInfo> S3Blobs::Stat(const std::string& sha256) {
  ASSIGN_OR_RETURN(ObjectInfo info, client_.Head(Key(sha256)));
  return RemoteBlobInfo{sha256, info.size, info.mtime_ms};
}

absl::StatusOr<std::string> S3Blobs::Read(const std::string& sha256, uint64_t offset,
                                          uint64_t length) {
  return client_.GetRange(Key(sha256), offset, length);
}

absl::Status S3Blobs::Download(const std::string& sha256, const std::string& path) {
  return client_.GetFile(Key(sha256), path);
}

absl::StatusOr<std::vector<RemoteBlobInfo>> S3Blobs::List() {
  ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, client_.List(prefix_ + "sha256/"));
  std::vector<RemoteBlobInfo> out;
  for (const ObjectInfo& o : objects) {
    const std::string name = o.key.substr(o.key.rfind('/') + 1);
    if (IsSha256Hex(name)) out.push_back({name, o.size, o.mtime_ms});
  }
  return out;
}

absl::Status S3Blobs::Remove(const std::string& sha256) { return client_.Delete(Key(sha256)); }

absl::Status S3Blobs::Quarantine(const std::string& sha256) {
  absl::Status copied = client_.Copy(Key(sha256), QuarantineKey(sha256));
  if (absl::IsNotFound(copied)) return absl::OkStatus();
  RETURN_IF_ERROR(copied);
  return client_.Delete(Key(sha256));
}

}  // namespace compressd::s3
