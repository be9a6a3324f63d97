// First start and every start: the server secret, the admin key file and the
// local workers' key file under --data-dir (docs/security.md, "Keys").
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/auth/authenticator.h"
#include "server/store/store.h"

namespace compressd {

struct AuthSetup {
  std::unique_ptr<Authenticator> auth;
  std::string admin_key_path;   // DATA/admin.key (mode 0600); empty with AuthMode::kNone
  std::string worker_key_path;  // DATA/worker.key, for --local-workers
  bool admin_key_created = false;
};

// Opens (creating) DATA/server.secret, and with AuthMode::kKeys makes sure
// DATA/admin.key holds a working admin key of tenant "default" and
// DATA/worker.key a worker key (minting them when missing, revoked or
// expired). AuthMode::kNone is FAILED_PRECONDITION unless `listen_host` is a
// loopback address.
// `secret_file`, when not empty, replaces DATA/server.secret: replicas on one
// database must share the secret their keys are hashed with (a Kubernetes
// Secret mounted in each pod; docs/deploy.md).
absl::StatusOr<AuthSetup> SetUpAuth(Store& store, const std::string& data_dir, AuthMode mode,
                                    const std::string& listen_host,
                                    const std::string& secret_file = "");

// "127.0.0.1", "::1", "localhost" and the rest of 127/8.
bool IsLoopbackHost(const std::string& host);

}  // namespace compressd
