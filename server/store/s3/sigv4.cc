#include "server/store/s3/sigv4.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/sha256.h"

namespace compressd::s3 {
namespace {

// Lowercase names, values trimmed with inner runs of spaces collapsed, sorted by name.
std::vector<std::pair<std::string, std::string>> CanonicalHeaders(const Request& request) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : request.headers) {
    std::string v;
    for (char c : absl::StripAsciiWhitespace(value)) {
      if (c == ' ' && !v.empty() && v.back() == ' ') continue;
      v.push_back(c);
    }
    out.emplace_back(absl::AsciiStrToLower(name), std::move(v));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string SignedHeaders(const std::vector<std::pair<std::string, std::string>>& headers) {
  std::vector<std::string> names;
  for (const auto& h : headers) names.push_back(h.first);
  return absl::StrJoin(names, ";");
}

std::string Scope(const Credentials& creds, const std::string& amz_date) {
  return absl::StrCat(amz_date.substr(0, 8), "/", creds.region, "/", creds.service,
                      "/aws4_request");
}

}  // namespace

std::string UriEncode(std::string_view text, bool encode_slash) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (c == '/' && !encode_slash)) {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  for (const auto& [k, v] : query) encoded.emplace_back(UriEncode(k, true), UriEncode(v, true));
  std::sort(encoded.begin(), encoded.end());
  std::vector<std::string> parts;
  for (const auto& [k, v] : encoded) parts.push_back(absl::StrCat(k, "=", v));
  return absl::StrJoin(parts, "&");
}

std::string CanonicalRequest(const Request& request) {
  const auto headers = CanonicalHeaders(request);
  std::string lines;
  for (const auto& [name, value] : headers) absl::StrAppend(&lines, name, ":", value, "\n");
  return absl::StrCat(request.method, "\n", UriEncode(request.path, false), "\n",
                      CanonicalQuery(request.query), "\n", lines, "\n", SignedHeaders(headers),
                      "\n", request.payload_sha256);
}

std::string StringToSign(const Request& request, const Credentials& creds,
                         const std::string& amz_date) {
  return absl::StrCat("AWS4-HMAC-SHA256\n", amz_date, "\n", Scope(creds, amz_date), "\n",
                      Sha256Hex(CanonicalRequest(request)));
}

std::string SigningKey(const Credentials& creds, const std::string& date) {
  const std::string k_date = HmacSha256("AWS4" + creds.secret_key, date);
  const std::string k_region = HmacSha256(k_date, creds.region);
  const std::string k_service = HmacSha256(k_region, creds.service);
  return HmacSha256(k_service, "aws4_request");
}

std::string Authorization(const Request& request, const Credentials& creds,
                          const std::string& amz_date) {
  const std::string signature = HmacSha256Hex(SigningKey(creds, amz_date.substr(0, 8)),
                                              StringToSign(request, creds, amz_date));
  return absl::StrCat("AWS4-HMAC-SHA256 Credential=", creds.access_key, "/",
                      Scope(creds, amz_date), ",SignedHeaders=",
                      SignedHeaders(CanonicalHeaders(request)), ",Signature=", signature);
}

std::string AmzDateNow() {
  return absl::FormatTime("%Y%m%dT%H%M%SZ", absl::Now(), absl::UTCTimeZone());
}

}  // namespace compressd::s3
