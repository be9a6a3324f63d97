// Small pieces the HTTP handlers share: status mapping, error bodies, proto
// messages as JSON, and the authenticated-handler wrapper of the JSON API.
#pragma once

#include <httplib.h>

#include <functional>
#include <string>

#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/auth/authenticator.h"

namespace compressd {

inline constexpr char kTextType[] = "text/plain; charset=utf-8";
inline constexpr char kJsonType[] = "application/json";
inline constexpr char kHtmlType[] = "text/html; charset=utf-8";
// State-changing requests (POST) must carry this header: a form or an image
// on another site cannot set it, so a browser's cookie alone cannot act.
inline constexpr char kCsrfHeader[] = "X-Requested-By";

// 400, 401, 403, 404, 409, 416, 429, 503 or 500 for an absl error.
int HttpStatusFor(const absl::Status& status);
// The status as text ("NOT_FOUND: job x not found").
void SendError(const absl::Status& status, httplib::Response& res);
// The status as JSON: {"code": "NOT_FOUND", "message": "..."}.
void SendJsonError(const absl::Status& status, httplib::Response& res);
// The message in protobuf's JSON mapping (lowerCamelCase names, every field).
std::string ProtoJson(const google::protobuf::Message& message);

// A JSON API call: the body, or an error the wrapper sends.
using ApiFn =
    std::function<absl::StatusOr<std::string>(const httplib::Request&, const Principal&)>;
// A handler that authenticates the request (http_auth.h), checks that the
// caller's role may call `rpc` (the gRPC method the endpoint mirrors, in the
// permissions table: "CompressionService.CancelJob"), requires kCsrfHeader on
// POST, then runs `fn` and sends its JSON. `auth` null: no checks (tests).
httplib::Server::Handler JsonHandler(Authenticator* auth, std::string rpc, ApiFn fn);

// The route's regex capture `i` (1-based), e.g. the id of "/api/jobs/([^/]+)".
std::string PathParam(const httplib::Request& req, size_t i);

// The pattern of one id in a route: the characters NewId and clients use.
inline constexpr char kIdPattern[] = "([A-Za-z0-9_.-]{1,128})";

}  // namespace compressd
