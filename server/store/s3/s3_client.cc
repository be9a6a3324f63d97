#include "server/store/s3/s3_client.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace compressd::s3 {
namespace {

constexpr uint64_t kMinPart = 5ull << 20;
constexpr uint64_t kReadChunk = 16ull << 20;

// The text of every <tag>...</tag> in `xml` (entities decoded), in order.
std::vector<std::string> XmlValues(absl::string_view xml, absl::string_view tag) {
  std::vector<std::string> out;
  const std::string open = absl::StrCat("<", tag, ">"), end_tag = absl::StrCat("</", tag, ">");
  for (size_t at = xml.find(open); at != absl::string_view::npos; at = xml.find(open, at)) {
    at += open.size();
    const size_t end = xml.find(end_tag, at);
    if (end == absl::string_view::npos) break;
    out.push_back(absl::StrReplaceAll(xml.substr(at, end - at), {{"&lt;", "<"},
                                                                 {"&gt;", ">"},
                                                                 {"&quot;", "\""},
                                                                 {"&apos;", "'"},
                                                                 {"&amp;", "&"}}));
    at = end + end_tag.size();
  }
  return out;
}

std::string XmlValue(absl::string_view xml, absl::string_view tag) {
  std::vector<std::string> v = XmlValues(xml, tag);
  return v.empty() ? "" : v.front();
}

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  if (out != nullptr) static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t AppendHeader(char* data, size_t size, size_t n, void* out) {
  absl::string_view line(data, size * n);
  const size_t colon = line.find(':');
  if (out != nullptr && colon != absl::string_view::npos) {
    static_cast<std::vector<std::pair<std::string, std::string>>*>(out)->emplace_back(
        absl::AsciiStrToLower(line.substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return size * n;
}

std::string HostOf(const std::string& endpoint) {
  absl::string_view host = endpoint;
  if (!absl::ConsumePrefix(&host, "https://")) absl::ConsumePrefix(&host, "http://");
  return std::string(host.substr(0, host.find('/')));
}

// The error an S3 answer `status` with XML `body` stands for.
absl::Status StatusOf(long status, const std::string& body, const std::string& what) {
  const std::string code = XmlValue(body, "Code"), message = XmlValue(body, "Message");
  const std::string detail =
      absl::StrCat("s3: ", what, ": HTTP ", status, code.empty() ? "" : " " + code,
                   message.empty() ? "" : ": " + message);
  if (status == 404) return absl::NotFoundError(detail);
  if (status == 401 || status == 403) return absl::PermissionDeniedError(detail);
  if (status == 416) return absl::OutOfRangeError(detail);
  if (status == 429 || status >= 500) return absl::UnavailableError(detail);
  return absl::InternalError(detail);
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

absl::StatusOr<std::pair<std::string, std::string>> ParseS3Url(std::string_view url) {
  const absl::string_view rest_all(url.data(), url.size());
  absl::string_view rest = rest_all;
  if (!absl::ConsumePrefix(&rest, "s3://") || rest.empty() || rest.front() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("--blobs: \"", rest_all, "\" is not s3://BUCKET[/PREFIX]"));
  }
  const size_t slash = rest.find('/');
  std::string bucket(rest.substr(0, slash));
  std::string prefix(slash == absl::string_view::npos ? "" : rest.substr(slash + 1));
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  return std::make_pair(bucket, prefix);
}

absl::StatusOr<long> Client::SendOnce(const Call& call) {
  static const bool inited = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!inited) return absl::InternalError("s3: curl_global_init failed");
  Request req;
  req.method = call.method;
  req.path = absl::StrCat("/", config_.bucket, call.key.empty() ? "" : "/", call.key);
  req.query = call.query;
  req.payload_sha256 = Sha256Hex(call.body);
  const std::string date = AmzDateNow();
  req.headers = {{"host", HostOf(config_.endpoint)},
                 {"x-amz-date", date},
                 {"x-amz-content-sha256", req.payload_sha256}};
  for (const auto& h : call.headers) req.headers.push_back(h);
  std::unique_ptr<curl_slist, CurlDeleter> headers;
  auto add = [&headers](const std::string& line) {
    curl_slist* next = curl_slist_append(headers.release(), line.c_str());
    headers.reset(next);
  };
  for (const auto& [name, value] : req.headers) add(absl::StrCat(name, ": ", value));
  add(absl::StrCat("authorization: ", Authorization(req, config_.credentials, date)));
  add("Expect:");  // no 100-continue round trip
  add("Content-Type: application/octet-stream");
  std::string url = absl::StrCat(config_.endpoint, UriEncode(req.path, false));
  if (!req.query.empty()) absl::StrAppend(&url, "?", CanonicalQuery(req.query));

  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return absl::InternalError("s3: curl_easy_init failed");
  CURL* c = curl.get();
  std::string error_body;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, call.method.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, static_cast<long>(config_.timeout_s));
  if (!config_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, config_.ca_file.c_str());
  if (call.method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  if (call.method == "PUT" || call.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, call.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(call.body.size()));
  }
  std::string* out = call.out != nullptr ? call.out : &error_body;
  out->clear();
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, AppendHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, call.response_headers);
  const std::string what = absl::StrCat(call.method, " ", config_.bucket, "/", call.key);
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat("s3: ", what, " at ", config_.endpoint, ": ", curl_easy_strerror(rc)));
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  // CompleteMultipartUpload and CopyObject may fail with 200 and an <Error> body.
  if (status < 200 || status >= 300 || absl::StrContains(*out, "<Error>")) {
    return StatusOf(status == 200 ? 500 : status, *out, what);
  }
  return status;
}

absl::StatusOr<long> Client::Send(const Call& call) {
  absl::StatusOr<long> result = SendOnce(call);
  for (int attempt = 1; attempt <= config_.retries && absl::IsUnavailable(result.status());
       ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
    result = SendOnce(call);
  }
  return result;
}

absl::Status Client::EnsureBucket() {
  absl::StatusOr<long> head = Send({"HEAD", "", {}, {}, {}});
  if (head.ok()) return absl::OkStatus();
  if (!absl::IsNotFound(head.status())) return head.status();
  return Send({"PUT", "", {}, {}, {}}).status();
}

absl::Status Client::Put(const std::string& key, std::string_view data) {
  return Send({"PUT", key, {}, {}, data}).status();
}

absl::StatusOr<ObjectInfo> Client::Head(const std::string& key) {
  std::vector<std::pair<std::string, std::string>> headers;
  Call call{"HEAD", key, {}, {}, {}};
  call.response_headers = &headers;
  RETURN_IF_ERROR(Send(call).status());
  ObjectInfo info;
  info.key = key;
  bool sized = false;
  for (const auto& [name, value] : headers) {
    if (name == "content-length") sized = absl::SimpleAtoi(value, &info.size);
    absl::Time t;
    std::string err;
    if (name == "last-modified" && absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", value, &t, &err)) {
      info.mtime_ms = absl::ToUnixMillis(t);
    }
  }
  if (!sized) {
    return absl::InternalError(absl::StrCat("s3: HEAD ", config_.bucket, "/", key,
                                            ": no Content-Length in the answer"));
  }
  return info;
}

absl::StatusOr<uint64_t> Client::Size(const std::string& key) {
  ASSIGN_OR_RETURN(ObjectInfo info, Head(key));
  return info.size;
}

absl::StatusOr<std::string> Client::GetRange(const std::string& key, uint64_t offset,
                                             uint64_t length) {
  std::string body;
  if (length == 0) return body;
  Call call{"GET", key, {}, {{"range", absl::StrCat("bytes=", offset, "-", offset + length - 1)}},
            {}};
  call.out = &body;
  RETURN_IF_ERROR(Send(call).status());
  return body;
}

absl::Status Client::GetFile(const std::string& key, const std::string& path) {
  ASSIGN_OR_RETURN(uint64_t size, Size(key));
  const std::string part = path + ".part";
  {
    std::ofstream out(part, std::ios::binary | std::ios::trunc);
    for (uint64_t at = 0; at < size;) {
      ASSIGN_OR_RETURN(std::string chunk, GetRange(key, at, std::min(kReadChunk, size - at)));
      if (chunk.empty()) {
        return absl::DataLossError(absl::StrCat("s3: GET ", config_.bucket, "/", key,
                                                ": object ended at ", at, " of ", size, " bytes"));
      }
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      at += chunk.size();
    }
    if (!out.flush()) return absl::InternalError(absl::StrCat("s3: cannot write ", part));
  }
  std::error_code ec;
  std::filesystem::rename(part, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("s3: rename ", part, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ObjectInfo>> Client::List(const std::string& prefix) {
  std::vector<ObjectInfo> out;
  std::string token;
  do {
    std::string body;
    Call call{"GET", "", {{"list-type", "2"}, {"prefix", prefix}}, {}, {}};
    if (!token.empty()) call.query.emplace_back("continuation-token", token);
    call.out = &body;
    RETURN_IF_ERROR(Send(call).status());
    for (const std::string& entry : XmlValues(body, "Contents")) {
      ObjectInfo info;
      info.key = XmlValue(entry, "Key");
      if (!absl::SimpleAtoi(XmlValue(entry, "Size"), &info.size)) continue;
      absl::Time t;
      std::string err;
      if (absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", XmlValue(entry, "LastModified"), &t, &err)) {
        info.mtime_ms = absl::ToUnixMillis(t);
      }
      out.push_back(std::move(info));
    }
    token = XmlValue(body, "IsTruncated") == "true" ? XmlValue(body, "NextContinuationToken") : "";
  } while (!token.empty());
  return out;
}

absl::Status Client::Delete(const std::string& key) {
  absl::Status s = Send({"DELETE", key, {}, {}, {}}).status();
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

absl::Status Client::Copy(const std::string& from_key, const std::string& to_key) {
  const std::string source = UriEncode(absl::StrCat("/", config_.bucket, "/", from_key), false);
  return Send({"PUT", to_key, {}, {{"x-amz-copy-source", source}}, {}}).status();
}

absl::Status Client::PutFile(const std::string& key, const std::string& path,
                             uint64_t part_bytes) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("s3: cannot read ", path, ": ", ec.message()));
  part_bytes = std::max(part_bytes, kMinPart);
  if (size > part_bytes) return PutMultipart(key, path, size, part_bytes);
  std::ifstream in(path, std::ios::binary);
  std::string data(size, '\0');
  if (!in.read(data.data(), static_cast<std::streamsize>(size))) {
    return absl::InternalError(absl::StrCat("s3: cannot read ", path));
  }
  return Put(key, data);
}

absl::Status Client::PutMultipart(const std::string& key, const std::string& path, uint64_t size,
                                  uint64_t part_bytes) {
  std::string body;
  Call create{"POST", key, {{"uploads", ""}}, {}, {}};
  create.out = &body;
  RETURN_IF_ERROR(Send(create).status());
  const std::string upload_id = XmlValue(body, "UploadId");
  if (upload_id.empty()) {
    return absl::InternalError(absl::StrCat("s3: POST ", config_.bucket, "/", key,
                                            "?uploads: no UploadId in the answer"));
  }
  auto upload = [&]() -> absl::Status {
    std::ifstream in(path, std::ios::binary);
    std::string parts_xml, data;
    for (uint64_t at = 0, n = 1; at < size; at += part_bytes, ++n) {
      data.resize(std::min(part_bytes, size - at));
      if (!in.read(data.data(), static_cast<std::streamsize>(data.size()))) {
        return absl::InternalError(absl::StrCat("s3: cannot read ", path, " at ", at));
      }
      std::vector<std::pair<std::string, std::string>> headers;
      Call part{"PUT", key, {{"partNumber", absl::StrCat(n)}, {"uploadId", upload_id}}, {}, data};
      part.response_headers = &headers;
      RETURN_IF_ERROR(Send(part).status());
      std::string etag;
      for (const auto& [name, value] : headers) {
        if (name == "etag") etag = value;
      }
      absl::StrAppend(&parts_xml, "<Part><PartNumber>", n, "</PartNumber><ETag>", etag,
                      "</ETag></Part>");
    }
    const std::string complete = absl::StrCat(
        "<CompleteMultipartUpload>", parts_xml, "</CompleteMultipartUpload>");
    return Send({"POST", key, {{"uploadId", upload_id}}, {}, complete}).status();
  };
  absl::Status status = upload();
  if (!status.ok()) {
    // Best effort: the parts would otherwise stay billed and invisible.
    Send({"DELETE", key, {{"uploadId", upload_id}}, {}, {}}).IgnoreError();
  }
  return status;
}

}  // namespace compressd::s3
