// AWS Signature Version 4 for S3-compatible object stores: the canonical
// request, the string to sign, the derived signing key and the
// Authorization header, as AWS specifies them
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html).
// Pure functions; checked against AWS's published examples
// (tests/unit/server/sigv4_test.cc) and against a live S3 server.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace compressd::s3 {

inline constexpr char kUnsignedPayload[] = "UNSIGNED-PAYLOAD";
// sha256 of the empty string, the payload hash of a request without a body.
inline constexpr char kEmptySha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Credentials {
  std::string access_key;
  std::string secret_key;
  std::string region = "us-east-1";
  std::string service = "s3";
};

struct Request {
  std::string method;  // "GET", "PUT", ...
  std::string path;    // decoded: "/bucket/key with spaces"
  // Decoded query parameters ("uploads" with an empty value, "partNumber"...).
  std::vector<std::pair<std::string, std::string>> query;
  // Every header to sign (names in any case); must include host and
  // x-amz-date (and for S3 x-amz-content-sha256).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload_sha256 = kEmptySha256;  // hex, or kUnsignedPayload
};

// RFC 3986 percent-encoding of everything but A-Z a-z 0-9 - _ . ~ (and "/"
// unless `encode_slash`), as SigV4 requires.
std::string UriEncode(std::string_view text, bool encode_slash);
// The query as sent and signed: sorted, each key and value encoded, "&"-joined.
std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query);
std::string CanonicalRequest(const Request& request);
// "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<sha256 of the canonical request>".
std::string StringToSign(const Request& request, const Credentials& creds,
                         const std::string& amz_date);
// HMAC chain "AWS4"+secret -> date -> region -> service -> "aws4_request" (raw bytes).
std::string SigningKey(const Credentials& creds, const std::string& date);
// The Authorization header value. `amz_date`: "YYYYMMDDTHHMMSSZ" (UTC), the
// same as the request's x-amz-date header.
std::string Authorization(const Request& request, const Credentials& creds,
                          const std::string& amz_date);
// Now as "YYYYMMDDTHHMMSSZ".
std::string AmzDateNow();

}  // namespace compressd::s3
