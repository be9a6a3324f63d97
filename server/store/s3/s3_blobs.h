// RemoteBlobs on S3-compatible object storage: blob `h` is the object
// <prefix>sha256/<h[0:2]>/<h>, a quarantined one <prefix>quarantine/<h>.
// Large blobs go up as multipart uploads; reads are ranged GETs.
#pragma once

#include <memory>
#include <string>

#include "server/store/remote_blobs.h"
#include "server/store/s3/s3_client.h"

namespace compressd::s3 {

class S3Blobs : public RemoteBlobs {
 public:
  // `prefix`: "" or ending in "/". Creates the bucket if it does not exist.
  static absl::StatusOr<std::unique_ptr<S3Blobs>> Open(Config config, std::string prefix);

  absl::Status Upload(const std::string& sha256, const std::string& path) override;
  absl::StatusOr<uint64_t> Size(const std::string& sha256, bool quarantined) override;
  absl::StatusOr<RemoteBlobInfo> Stat(const std::string& sha256) override;
  absl::StatusOr<std::string> Read(const std::string& sha256, uint64_t offset,
                                   uint64_t length) override;
  absl::Status Download(const std::string& sha256, const std::string& path) override;
  absl::StatusOr<std::vector<RemoteBlobInfo>> List() override;
  absl::Status Remove(const std::string& sha256) override;
  absl::Status Quarantine(const std::string& sha256) override;
  std::string Describe() const override;

 private:
  S3Blobs(Config config, std::string prefix)
      : client_(std::move(config)), prefix_(std::move(prefix)) {}
  std::string Key(const std::string& sha256) const;
  std::string QuarantineKey(const std::string& sha256) const;

  Client client_;
  const std::string prefix_;
};

}  // namespace compressd::s3
