// HTTPS with a certificate that can be renewed in place: every handshake
// takes the current key pair from the PEM files, re-read when their
// modification time changes (as the gRPC port's file watcher does), so a
// renewed certificate is served without a restart. Thread-safe.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace compressd {

class ReloadingCertificate {
 public:
  ReloadingCertificate(std::string cert_path, std::string key_path);
  ~ReloadingCertificate();

  // Installs the per-handshake callback on `ctx` (which must outlive neither
  // this object nor its connections). INVALID_ARGUMENT if the files do not
  // hold a matching certificate and key now.
  absl::Status Attach(SSL_CTX* ctx);

 private:
  static int OnHandshake(SSL* ssl, void* self);
  // Re-reads the files if they changed; keeps the last good pair otherwise.
  absl::Status Refresh() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string cert_path_;
  const std::string key_path_;
  absl::Mutex mu_;
  int64_t loaded_mtime_ns_ ABSL_GUARDED_BY(mu_) = -1;
  X509* cert_ ABSL_GUARDED_BY(mu_) = nullptr;
  STACK_OF(X509) * chain_ ABSL_GUARDED_BY(mu_) = nullptr;
  EVP_PKEY* key_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace compressd
