#include "server/auth/bootstrap.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "server/auth/api_key.h"

namespace compressd {

namespace {

// $COMPRESSD_SERVER_SECRET (how a Kubernetes Secret reaches every replica:
// a mounted file would be group-readable under fsGroup), else the file.
absl::StatusOr<std::string> ServerSecret(const std::string& data_dir,
                                         const std::string& secret_file) {
  if (const char* env = std::getenv("COMPRESSD_SERVER_SECRET"); env != nullptr && *env) {
    std::string secret(absl::StripAsciiWhitespace(env));
    if (secret.size() != 64 || secret.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return absl::InvalidArgumentError(
          "COMPRESSD_SERVER_SECRET: not a server secret (64 lowercase hex characters)");
    }
    return secret;
  }
  return LoadOrCreateServerSecret(secret_file.empty() ? data_dir + "/server.secret" : secret_file);
}

}  // namespace

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || absl::StartsWith(host, "127.");
}

absl::StatusOr<AuthSetup> SetUpAuth(Store& store, const std::string& data_dir, AuthMode mode,
                                    const std::string& listen_host,
                                    const std::string& secret_file) {
  if (mode == AuthMode::kNone && !IsLoopbackHost(listen_host)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--auth=none is for local development and needs a loopback --listen-host; got \"",
        listen_host, "\""));
  }
  ASSIGN_OR_RETURN(std::string secret, ServerSecret(data_dir, secret_file));
  AuthSetup setup;
  setup.auth = std::make_unique<Authenticator>(store, std::move(secret), mode);
  if (mode == AuthMode::kNone) {
    std::fprintf(stderr,
                 "compressd: WARNING: --auth=none: every caller is an admin; for local "
                 "development only\n");
    return setup;
  }
  setup.admin_key_path = data_dir + "/admin.key";
  setup.worker_key_path = data_dir + "/worker.key";
  ASSIGN_OR_RETURN(setup.admin_key_created,
                   setup.auth->EnsureKeyFile(setup.admin_key_path, kDefaultTenant, v1::ROLE_ADMIN,
                                             "created by compressd on first start"));
  RETURN_IF_ERROR(setup.auth
                      ->EnsureKeyFile(setup.worker_key_path, kSystemTenant, v1::ROLE_WORKER,
                                      "local workers (--local-workers)")
                      .status());
  if (setup.admin_key_created) {
    std::fprintf(stderr,
                 "compressd: created an admin API key in %s (mode 0600); compressctl reads it "
                 "with --key-file %s or COMPRESSD_KEY_FILE\n",
                 setup.admin_key_path.c_str(), setup.admin_key_path.c_str());
  }
  return setup;
}

}  // namespace compressd
