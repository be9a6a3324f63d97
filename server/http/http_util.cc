#include "server/http/http_util.h"

#include <google/protobuf/util/json_util.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/auth/permissions.h"
#include "server/http/http_auth.h"

namespace compressd {

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return 409;
    case absl::StatusCode::kOutOfRange:
      return 416;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

void SendError(const absl::Status& status, httplib::Response& res) {
  res.status = HttpStatusFor(status);
  res.set_content(status.ToString() + "\n", kTextType);
}

void SendJsonError(const absl::Status& status, httplib::Response& res) {
  res.status = HttpStatusFor(status);
  const nlohmann::json body = {{"code", absl::StatusCodeToString(status.code())},
                               {"message", std::string(status.message())}};
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), kJsonType);
}

std::string ProtoJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions print;
  print.always_print_primitive_fields = true;
  if (!google::protobuf::util::MessageToJsonString(message, &json, print).ok()) return "{}";
  return json;
}

httplib::Server::Handler JsonHandler(Authenticator* auth, std::string rpc, ApiFn fn) {
  return [auth, rpc = std::move(rpc), fn = std::move(fn)](const httplib::Request& req,
                                                          httplib::Response& res) {
    absl::StatusOr<Principal> who = HttpPrincipal(auth, req);
    if (who.ok() && auth != nullptr) {
      absl::Status allowed = CheckPermission(who->role, rpc);
      if (!allowed.ok()) who = allowed;
    }
    if (who.ok() && req.method == "POST" && !req.has_header(kCsrfHeader)) {
      who = absl::PermissionDeniedError(
          absl::StrCat("a POST needs the ", kCsrfHeader, " header (cross-site request check)"));
    }
    absl::StatusOr<std::string> body = who.ok() ? fn(req, *who) : who.status();
    if (!body.ok()) return SendJsonError(body.status(), res);
    res.set_header("Cache-Control", "no-store");
    res.set_content(*body, kJsonType);
  };
}

std::string PathParam(const httplib::Request& req, size_t i) {
  return i < req.matches.size() ? std::string(req.matches[i]) : "";
}

}  // namespace compressd
