// Who is calling: checks the bearer API key of every request against the
// Store (so a revoked or expired key stops working on its next call) and the
// caller's role against permissions.h. Also mints and revokes keys, and
// bootstraps the key files compressd writes on first start. Thread-safe.
#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "compressd/v1/admin.pb.h"
#include "server/core/scope.h"
#include "server/store/store.h"

namespace compressd {

struct Principal {
  std::string key_id;
  std::string tenant;
  v1::Role role = v1::ROLE_UNSPECIFIED;

  // Admins see every tenant; everyone else their own.
  Scope scope() const { return role == v1::ROLE_ADMIN ? Scope::All() : Scope::Tenant(tenant); }
};

enum class AuthMode {
  kKeys,  // every call needs a key (the default)
  kNone,  // local development only: every call is an admin of "default" and
          // may call every method (compressd refuses it off loopback)
};

// The tenant of worker keys: workers serve every tenant.
inline constexpr char kSystemTenant[] = "system";

class Authenticator {
 public:
  Authenticator(Store& store, std::string server_secret, AuthMode mode);

  AuthMode mode() const { return mode_; }

  // `authorization`: the request's "authorization" header value, expected
  // "Bearer <key>" (empty when absent). UNAUTHENTICATED naming what is wrong
  // (missing, malformed, unknown, revoked, expired).
  absl::StatusOr<Principal> Authenticate(absl::string_view authorization);
  // Authenticate, then PERMISSION_DENIED unless the role may call `method`.
  absl::StatusOr<Principal> Authorize(absl::string_view authorization, absl::string_view method);

  // Mints and stores a key. INVALID_ARGUMENT for a bad role or expiry,
  // NOT_FOUND for an unknown tenant.
  absl::StatusOr<v1::CreateKeyResponse> CreateKey(const v1::CreateKeyRequest& req);
  // Revokes at once (the next call with it is UNAUTHENTICATED). NOT_FOUND.
  absl::StatusOr<v1::ApiKey> RevokeKey(const std::string& key_id);

  // Makes sure the file at `path` holds a working key of `role` in `tenant`:
  // if it is missing, or its key is unknown, revoked or expired, mints one
  // and writes it with mode 0600. Returns whether it wrote a new key.
  absl::StatusOr<bool> EnsureKeyFile(const std::string& path, const std::string& tenant,
                                     v1::Role role, const std::string& description);

 private:
  absl::StatusOr<Principal> CheckKey(absl::string_view key);
  void NoteUse(v1::ApiKey key);

  Store& store_;
  const std::string server_secret_;
  const AuthMode mode_;
  absl::Mutex mu_;
  // When each key's last_used_ms was last written (at most once a minute).
  absl::flat_hash_map<std::string, int64_t> last_written_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compressd
