// A small S3 client over libcurl, signed with SigV4 (sigv4.h), for the blob
// store's object-storage backend: path-style requests to any S3-compatible
// endpoint (AWS, SeaweedFS, MinIO, Ceph). Objects are written whole (small)
// or as streaming multipart uploads of a local file (large), read whole or by
// byte range, listed by prefix and deleted.
//
// Errors: NOT_FOUND for a missing object, PERMISSION_DENIED for refused
// credentials (naming S3's error code, e.g. SignatureDoesNotMatch),
// OUT_OF_RANGE for a range past the end, UNAVAILABLE for a connection
// failure or a 5xx answer (retried here a few times first), INTERNAL for an
// unexpected answer; each names the method, bucket and key.
// Thread-safe (one curl handle per call).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/s3/sigv4.h"

namespace compressd::s3 {

struct Config {
  std::string endpoint;  // "http://127.0.0.1:8333" or "https://s3.eu-west-1.amazonaws.com"
  std::string bucket;
  Credentials credentials;
  int timeout_s = 300;     // per request
  int retries = 3;         // on UNAVAILABLE
  std::string ca_file;     // extra CA bundle for an https endpoint (empty: the system's)
};

// "s3://bucket/prefix" -> {bucket, prefix ("" or ending in "/")}; INVALID_ARGUMENT otherwise.
absl::StatusOr<std::pair<std::string, std::string>> ParseS3Url(std::string_view url);

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  int64_t mtime_ms = 0;  // LastModified
};

class Client {
 public:
  explicit Client(Config config) : config_(std::move(config)) {}

  const Config& config() const { return config_; }

  // Creates the bucket if it does not exist (OK if it does).
  absl::Status EnsureBucket();
  absl::Status Put(const std::string& key, std::string_view data);
  // Uploads a local file, as a multipart upload in parts of `part_bytes`
  // (at least 5 MiB, S3's minimum) when it is larger than one part; an
  // upload that fails is aborted, leaving nothing behind.
  absl::Status PutFile(const std::string& key, const std::string& path,
                       uint64_t part_bytes = 16ull << 20);
  absl::StatusOr<uint64_t> Size(const std::string& key);
  // Size and LastModified (HEAD); NOT_FOUND if absent.
  absl::StatusOr<ObjectInfo> Head(const std::string& key);
  // Up to `length` bytes from `offset` (fewer at the end of the object).
  absl::StatusOr<std::string> GetRange(const std::string& key, uint64_t offset, uint64_t length);
  // The whole object into a local file (written to path + ".part", then renamed).
  absl::Status GetFile(const std::string& key, const std::string& path);
  // Every object whose key starts with `prefix` (all pages).
  absl::StatusOr<std::vector<ObjectInfo>> List(const std::string& prefix);
  absl::Status Delete(const std::string& key);  // OK if absent
  // Server-side copy (objects up to 5 GiB).
  absl::Status Copy(const std::string& from_key, const std::string& to_key);

 private:
  struct Call {
    std::string method;
    std::string key;  // "" for the bucket itself
    std::vector<std::pair<std::string, std::string>> query;
    std::vector<std::pair<std::string, std::string>> headers;  // beyond the signed basics
    std::string_view body;
    std::string* out = nullptr;  // the response body (may be null)
    std::vector<std::pair<std::string, std::string>>* response_headers = nullptr;
  };
  // Sends `call` with retries; the HTTP status, or a mapped error.
  absl::StatusOr<long> Send(const Call& call);
  absl::StatusOr<long> SendOnce(const Call& call);
  absl::Status PutMultipart(const std::string& key, const std::string& path, uint64_t size,
                            uint64_t part_bytes);

  const Config config_;
};

}  // namespace compressd::s3
