#include "server/auth/api_key.h"

#include <openssl/crypto.h>
#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/util.h"

namespace compressd {
namespace {

constexpr absl::string_view kPrefix = "cmpd_";
constexpr size_t kKeyIdHex = 16;
constexpr size_t kSecretBytes = 32;

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<ParsedKey> ParseKey(absl::string_view key) {
  // cmpd_ k<16 hex> _ <64 hex>
  const size_t id_len = 1 + kKeyIdHex;
  const size_t want = kPrefix.size() + id_len + 1 + 2 * kSecretBytes;
  if (key.size() != want || key.substr(0, kPrefix.size()) != kPrefix ||
      key[kPrefix.size()] != 'k' || key[kPrefix.size() + id_len] != '_') {
    return absl::UnauthenticatedError(
        "malformed API key: expected cmpd_<key id>_<secret> (compressctl admin keys create)");
  }
  ParsedKey parsed;
  parsed.key_id = std::string(key.substr(kPrefix.size(), id_len));
  parsed.secret = std::string(key.substr(kPrefix.size() + id_len + 1));
  if (!IsLowerHex(parsed.key_id.substr(1)) || !IsLowerHex(parsed.secret)) {
    return absl::UnauthenticatedError("malformed API key: not hexadecimal");
  }
  return parsed;
}

std::string KeyHash(const std::string& server_secret, const std::string& salt,
                    const std::string& secret) {
  return HmacSha256Hex(server_secret, salt + secret);
}

bool KeyMatches(const std::string& server_secret, const ApiKeyRecord& record,
                const std::string& secret) {
  const std::string hash = KeyHash(server_secret, record.salt, secret);
  return hash.size() == record.hash.size() &&
         CRYPTO_memcmp(hash.data(), record.hash.data(), hash.size()) == 0;
}

MintedKey MintKey(const std::string& server_secret, v1::ApiKey key) {
  MintedKey minted;
  key.set_key_id(absl::StrCat("k", RandomHex(kKeyIdHex / 2)));
  const std::string secret = RandomHex(kSecretBytes);
  minted.record.salt = RandomHex(16);
  minted.record.hash = KeyHash(server_secret, minted.record.salt, secret);
  minted.key = absl::StrCat(kPrefix, key.key_id(), "_", secret);
  minted.record.key = std::move(key);
  return minted;
}

absl::Status WriteSecretFile(const std::string& path, const std::string& content) {
  RETURN_IF_ERROR(WriteFileAtomically(path, content + "\n", /*sync_dir=*/true));
  if (chmod(path.c_str(), 0600) != 0) {
    return absl::InternalError(absl::StrCat(path, ": cannot set mode 0600"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LoadOrCreateServerSecret(const std::string& path) {
  absl::StatusOr<std::string> content = ReadFileToString(path);
  if (absl::IsNotFound(content.status())) {
    const std::string secret = RandomHex(32);
    RETURN_IF_ERROR(WriteSecretFile(path, secret));
    return secret;
  }
  RETURN_IF_ERROR(content.status());
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": readable by group or others; chmod 600 it"));
  }
  std::string secret(absl::StripAsciiWhitespace(*content));
  if (secret.size() != 64 || !IsLowerHex(secret)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": not a server secret (64 hex characters)"));
  }
  return secret;
}

}  // namespace compressd
