// Incremental SHA-256 (OpenSSL EVP) producing lowercase hex digests.
// Not thread-safe: one hasher per stream.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace compressd {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view data);
  // Returns the lowercase hex digest. The hasher must not be updated afterwards.
  std::string HexDigest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Sha256Hex(std::string_view data);
// Hashes a whole file by streaming it. NOT_FOUND if it cannot be opened.
absl::StatusOr<std::string> Sha256File(const std::string& path);
// True for 64 lowercase hex characters.
bool IsSha256Hex(std::string_view s);
// HMAC-SHA256 of `data` under `key`: the 32 raw bytes, and as lowercase hex.
std::string HmacSha256(std::string_view key, std::string_view data);
std::string HmacSha256Hex(std::string_view key, std::string_view data);
// Bytes as lowercase hex.
std::string HexEncode(std::string_view bytes);

}  // namespace compressd
