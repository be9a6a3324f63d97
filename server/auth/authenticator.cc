#include "server/auth/authenticator.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "server/auth/api_key.h"
#include "server/auth/permissions.h"

namespace compressd {
namespace {

constexpr int64_t kLastUseWriteIntervalMs = 60000;
constexpr int64_t kMaxExpirySeconds = int64_t{10} * 365 * 24 * 3600;

}  // namespace

Authenticator::Authenticator(Store& store, std::string server_secret, AuthMode mode)
    : store_(store), server_secret_(std::move(server_secret)), mode_(mode) {}

absl::StatusOr<Principal> Authenticator::Authenticate(absl::string_view authorization) {
  if (mode_ == AuthMode::kNone) return Principal{"none", kDefaultTenant, v1::ROLE_ADMIN};
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "no API key: send \"authorization: Bearer <key>\" (compressctl --key-file or "
        "$COMPRESSD_KEY)");
  }
  constexpr absl::string_view kBearer = "Bearer ";
  if (!absl::StartsWithIgnoreCase(authorization, kBearer)) {
    return absl::UnauthenticatedError("authorization: expected \"Bearer <key>\"");
  }
  return CheckKey(absl::StripAsciiWhitespace(authorization.substr(kBearer.size())));
}

absl::StatusOr<Principal> Authenticator::CheckKey(absl::string_view key) {
  ASSIGN_OR_RETURN(ParsedKey parsed, ParseKey(key));
  absl::StatusOr<ApiKeyRecord> record = store_.GetKey(parsed.key_id);
  // Unknown and wrong secret answer alike: key ids are not secrets, but a
  // caller learns nothing about which keys exist.
  if (absl::IsNotFound(record.status()) ||
      (record.ok() && !KeyMatches(server_secret_, *record, parsed.secret))) {
    return absl::UnauthenticatedError(absl::StrCat("API key ", parsed.key_id, " is not valid"));
  }
  RETURN_IF_ERROR(record.status());
  const v1::ApiKey& k = record->key;
  if (k.revoked()) {
    return absl::UnauthenticatedError(absl::StrCat("API key ", k.key_id(), " was revoked"));
  }
  const int64_t now = NowMs();
  if (k.expire_time_ms() != 0 && now >= k.expire_time_ms()) {
    return absl::UnauthenticatedError(absl::StrCat("API key ", k.key_id(), " expired"));
  }
  NoteUse(k);
  return Principal{k.key_id(), k.tenant(), k.role()};
}

void Authenticator::NoteUse(v1::ApiKey key) {
  const int64_t now = NowMs();
  {
    absl::MutexLock lock(&mu_);
    int64_t& last = last_written_[key.key_id()];
    if (now - last < kLastUseWriteIntervalMs) return;
    last = now;
  }
  key.set_last_used_ms(now);
  // Best effort: a failed write only leaves last_used_ms older.
  (void)store_.UpdateKey(key);
}

absl::StatusOr<Principal> Authenticator::Authorize(absl::string_view authorization,
                                                   absl::string_view method) {
  ASSIGN_OR_RETURN(Principal principal, Authenticate(authorization));
  if (mode_ == AuthMode::kNone) return principal;
  RETURN_IF_ERROR(CheckPermission(principal.role, method));
  return principal;
}

absl::StatusOr<v1::CreateKeyResponse> Authenticator::CreateKey(const v1::CreateKeyRequest& req) {
  if (req.role() == v1::ROLE_UNSPECIFIED || !v1::Role_IsValid(req.role())) {
    return absl::InvalidArgumentError("role: required (admin, member, viewer or worker)");
  }
  if (req.expires_in_seconds() < 0 || req.expires_in_seconds() > kMaxExpirySeconds) {
    return absl::InvalidArgumentError(absl::StrCat("expires_in_seconds: must be in [0, ",
                                                   kMaxExpirySeconds, "], got ",
                                                   req.expires_in_seconds()));
  }
  const std::string tenant = req.role() == v1::ROLE_WORKER ? kSystemTenant : req.tenant();
  if (req.role() != v1::ROLE_WORKER) {
    if (tenant.empty()) return absl::InvalidArgumentError("tenant: required");
    absl::StatusOr<v1::Tenant> found = store_.GetTenant(tenant);
    if (!found.ok()) {
      return absl::Status(found.status().code(),
                          absl::StrCat("tenant: ", found.status().message()));
    }
  }
  v1::ApiKey key;
  key.set_tenant(tenant);
  key.set_role(req.role());
  key.set_description(req.description());
  const int64_t now = NowMs();
  key.set_create_time_ms(now);
  if (req.expires_in_seconds() > 0) key.set_expire_time_ms(now + req.expires_in_seconds() * 1000);
  MintedKey minted = MintKey(server_secret_, std::move(key));
  RETURN_IF_ERROR(store_.InsertKey(minted.record));
  v1::CreateKeyResponse resp;
  *resp.mutable_key() = minted.record.key;
  resp.set_secret(minted.key);
  return resp;
}

absl::StatusOr<v1::ApiKey> Authenticator::RevokeKey(const std::string& key_id) {
  if (key_id.empty()) return absl::InvalidArgumentError("key_id: required");
  ASSIGN_OR_RETURN(ApiKeyRecord record, store_.GetKey(key_id));
  record.key.set_revoked(true);
  RETURN_IF_ERROR(store_.UpdateKey(record.key));
  return record.key;
}

absl::StatusOr<bool> Authenticator::EnsureKeyFile(const std::string& path,
                                                  const std::string& tenant, v1::Role role,
                                                  const std::string& description) {
  absl::StatusOr<std::string> existing = ReadFileToString(path);
  if (existing.ok() && CheckKey(absl::StripAsciiWhitespace(*existing)).ok()) return false;
  if (!existing.ok() && !absl::IsNotFound(existing.status())) return existing.status();
  v1::CreateKeyRequest req;
  req.set_tenant(tenant);
  req.set_role(role);
  req.set_description(description);
  ASSIGN_OR_RETURN(v1::CreateKeyResponse created, CreateKey(req));
  RETURN_IF_ERROR(WriteSecretFile(path, created.secret()));
  return true;
}

}  // namespace compressd
