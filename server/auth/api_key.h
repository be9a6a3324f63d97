// API keys: their wire form, minting, and the salted HMAC they are stored as.
//
// A key is "cmpd_<key_id>_<secret>": key_id is "k" + 16 hex characters (the
// public, listable part), secret 64 hex characters (256 bits from the OS
// CSPRNG). The server stores HMAC-SHA256(server secret, salt || secret) with a
// per-key 128-bit salt, never the secret; the server secret lives in a 0600
// file beside the database, so a copy of the database alone cannot check
// guesses. Comparison is constant-time.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/roles.h"
#include "compressd/v1/admin.pb.h"
#include "server/store/store.h"

namespace compressd {

struct ParsedKey {
  std::string key_id;
  std::string secret;
};

// UNAUTHENTICATED "malformed API key" for anything but the form above.
absl::StatusOr<ParsedKey> ParseKey(absl::string_view key);

struct MintedKey {
  ApiKeyRecord record;  // to store
  std::string key;      // the whole key, to show once
};

// A new key for `tenant` and `role` (public fields of `key` other than
// key_id are kept as given).
MintedKey MintKey(const std::string& server_secret, v1::ApiKey key);

// hex HMAC-SHA256(server_secret, salt || secret).
std::string KeyHash(const std::string& server_secret, const std::string& salt,
                    const std::string& secret);

// Whether `key` matches `record` (constant-time in the hash).
bool KeyMatches(const std::string& server_secret, const ApiKeyRecord& record,
                const std::string& secret);

// The server secret at `path` (64 hex characters), created with mode 0600 if
// missing. FAILED_PRECONDITION for a file that is not a secret or is readable
// by others.
absl::StatusOr<std::string> LoadOrCreateServerSecret(const std::string& path);

// Writes `content` to `path` with mode 0600 (replacing it atomically).
absl::Status WriteSecretFile(const std::string& path, const std::string& content);

}  // namespace compressd
