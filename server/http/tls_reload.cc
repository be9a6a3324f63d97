#include "server/http/tls_reload.h"

#include <openssl/pem.h>
#include <sys/stat.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd {
namespace {

// The newer modification time of two files in ns; -1 if one is missing.
int64_t ModTimeNs(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  if (stat(a.c_str(), &sa) != 0 || stat(b.c_str(), &sb) != 0) return -1;
  const auto ns = [](const struct stat& s) {
    return int64_t{s.st_mtim.tv_sec} * 1000000000 + s.st_mtim.tv_nsec;
  };
  return std::max(ns(sa), ns(sb));
}

void FreeChain(STACK_OF(X509) * chain) {
  if (chain != nullptr) sk_X509_pop_free(chain, X509_free);
}

}  // namespace

ReloadingCertificate::ReloadingCertificate(std::string cert_path, std::string key_path)
    : cert_path_(std::move(cert_path)), key_path_(std::move(key_path)) {}

ReloadingCertificate::~ReloadingCertificate() {
  absl::MutexLock lock(&mu_);
  X509_free(cert_);
  FreeChain(chain_);
  EVP_PKEY_free(key_);
}

absl::Status ReloadingCertificate::Refresh() {
  const int64_t mtime = ModTimeNs(cert_path_, key_path_);
  if (mtime == loaded_mtime_ns_) return absl::OkStatus();
  FILE* cert_file = std::fopen(cert_path_.c_str(), "r");
  FILE* key_file = std::fopen(key_path_.c_str(), "r");
  X509* cert = cert_file ? PEM_read_X509(cert_file, nullptr, nullptr, nullptr) : nullptr;
  STACK_OF(X509)* chain = sk_X509_new_null();
  while (cert_file != nullptr && chain != nullptr) {
    X509* next = PEM_read_X509(cert_file, nullptr, nullptr, nullptr);
    if (next == nullptr) break;
    sk_X509_push(chain, next);
  }
  EVP_PKEY* key = key_file ? PEM_read_PrivateKey(key_file, nullptr, nullptr, nullptr) : nullptr;
  if (cert_file) std::fclose(cert_file);
  if (key_file) std::fclose(key_file);
  if (cert == nullptr || key == nullptr || X509_check_private_key(cert, key) != 1) {
    X509_free(cert);
    FreeChain(chain);
    EVP_PKEY_free(key);
    // A half-written pair (cert replaced, key not yet): keep serving the old one.
    return absl::InvalidArgumentError(absl::StrCat("--tls-cert ", cert_path_, " / --tls-key ",
                                                   key_path_, ": not a matching PEM pair"));
  }
  X509_free(cert_);
  FreeChain(chain_);
  EVP_PKEY_free(key_);
  cert_ = cert;
  chain_ = chain;
  key_ = key;
  loaded_mtime_ns_ = mtime;
  return absl::OkStatus();
}

int ReloadingCertificate::OnHandshake(SSL* ssl, void* arg) {
  auto* self = static_cast<ReloadingCertificate*>(arg);
  absl::MutexLock lock(&self->mu_);
  (void)self->Refresh();
  if (self->cert_ == nullptr) return 0;
  // SSL_use_* take their own references.
  if (SSL_use_certificate(ssl, self->cert_) != 1 || SSL_use_PrivateKey(ssl, self->key_) != 1) {
    return 0;
  }
  for (int i = 0; i < sk_X509_num(self->chain_); ++i) {
    SSL_add1_chain_cert(ssl, sk_X509_value(self->chain_, i));
  }
  return 1;
}

absl::Status ReloadingCertificate::Attach(SSL_CTX* ctx) {
  {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(Refresh());
  }
  SSL_CTX_set_cert_cb(ctx, &ReloadingCertificate::OnHandshake, this);
  return absl::OkStatus();
}

}  // namespace compressd
