// API keys on the HTTP port: the dashboard and the JSON API take the key as
// "authorization: Bearer <key>" or from the cookie the login form sets
// (POST /login). /metrics, /healthz and /readyz stay open.
#pragma once

#include <httplib.h>

#include <string>

#include "absl/status/statusor.h"
#include "server/auth/authenticator.h"

namespace compressd {

inline constexpr char kKeyCookie[] = "compressd_key";

// The caller of `req` (`auth` null: an admin of every tenant, for tests).
absl::StatusOr<Principal> HttpPrincipal(Authenticator* auth, const httplib::Request& req);

// GET /login (the form) and POST /login (checks the key, sets an HttpOnly,
// SameSite=Strict cookie, Secure when `secure_cookie`, and redirects to /).
void RegisterLogin(httplib::Server& server, Authenticator* auth, bool secure_cookie);

// The login page, with `message` above the form (HTML-escaped); after
// signing in the browser goes to `next` (a path on this server; else "/").
std::string RenderLogin(const std::string& message, const std::string& next = "/");
// `next` if it is a path on this server ("/jobs/x"), else "/".
std::string SafeNextPath(const std::string& next);

}  // namespace compressd
