#include "server/http/http_auth.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "server/http/dashboard.h"

namespace compressd {
namespace {

// The value of cookie `name` in the Cookie header, or "".
std::string CookieValue(const httplib::Request& req, absl::string_view name) {
  for (absl::string_view part : absl::StrSplit(req.get_header_value("Cookie"), ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, name) && absl::ConsumePrefix(&part, "=")) {
      return std::string(part);
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<Principal> HttpPrincipal(Authenticator* auth, const httplib::Request& req) {
  if (auth == nullptr) return Principal{"none", kDefaultTenant, v1::ROLE_ADMIN};
  std::string header = req.get_header_value("Authorization");
  if (header.empty()) {
    const std::string cookie = CookieValue(req, kKeyCookie);
    if (!cookie.empty()) header = absl::StrCat("Bearer ", cookie);
  }
  ASSIGN_OR_RETURN(Principal who, auth->Authenticate(header));
  if (who.role == v1::ROLE_WORKER) {
    return absl::PermissionDeniedError("a worker key cannot open the dashboard");
  }
  return who;
}

std::string SafeNextPath(const std::string& next) {
  // Not "//host" or "/\\host" (other sites to a browser), nothing but a path.
  if (next.size() < 1 || next[0] != '/' || next.size() > 512) return "/";
  if (next.size() > 1 && (next[1] == '/' || next[1] == '\\')) return "/";
  for (char c : next) {
    if (static_cast<unsigned char>(c) < 0x21 || c == '\\' || c == '"') return "/";
  }
  return next;
}

std::string RenderLogin(const std::string& message, const std::string& next) {
  return absl::StrCat(
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>compressd: sign in</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head>"
      "<body><main class=\"login\">"
      "<h1>compressd</h1><p role=\"status\">",
      HtmlEscape(message),
      "</p>"
      "<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"",
      HtmlEscape(SafeNextPath(next)),
      "\"><label for=\"key\">API key</label> "
      "<input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"off\" required> "
      "<button type=\"submit\">Sign in</button></form></main></body></html>");
}

void RegisterLogin(httplib::Server& server, Authenticator* auth, bool secure_cookie) {
  server.Get("/login", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(RenderLogin("Sign in with an API key (compressctl admin keys create)."),
                    "text/html; charset=utf-8");
  });
  server.Post("/login", [auth, secure_cookie](const httplib::Request& req, httplib::Response& res) {
    const std::string key = req.get_param_value("key");
    absl::StatusOr<Principal> who = auth == nullptr
                                        ? absl::StatusOr<Principal>(Principal{})
                                        : auth->Authenticate(absl::StrCat("Bearer ", key));
    if (!who.ok()) {
      res.status = 401;
      res.set_content(RenderLogin(std::string(who.status().message())), "text/html; charset=utf-8");
      return;
    }
    res.set_header("Set-Cookie",
                   absl::StrCat(kKeyCookie, "=", key, "; Path=/; HttpOnly; SameSite=Strict",
                                secure_cookie ? "; Secure" : ""));
    res.set_redirect(SafeNextPath(req.get_param_value("next")), 303);
  });
}

}  // namespace compressd
