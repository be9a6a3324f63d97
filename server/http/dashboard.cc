#include "server/http/dashboard.h"

#include "absl/strings/str_cat.h"
#include "server/http/http_auth.h"
#include "server/http/http_util.h"
#include "server/jobs/job_service.h"
#include "server/models/model_registry.h"

extern "C" {
// dashboard_assets.S: each file's bytes between the two symbols.
extern const char compressd_asset_app_js[], compressd_asset_app_js_end[];
extern const char compressd_asset_app_css[], compressd_asset_app_css_end[];
extern const char compressd_asset_chart_js[], compressd_asset_chart_js_end[];
}

namespace compressd {
namespace {

struct Asset {
  std::string_view name;
  std::string_view type;
  const char* begin;
  const char* end;
};

constexpr Asset kAssets[] = {
    {"app.js", "text/javascript; charset=utf-8", compressd_asset_app_js, compressd_asset_app_js_end},
    {"app.css", "text/css; charset=utf-8", compressd_asset_app_css, compressd_asset_app_css_end},
    {"chart.js", "text/javascript; charset=utf-8", compressd_asset_chart_js,
     compressd_asset_chart_js_end},
};

constexpr const char* kNav[][2] = {
    {"jobs", "Jobs"}, {"models", "Models"}, {"datasets", "Datasets"}, {"workers", "Workers"}};

// Serves page `page` (about the object in capture 1, if any) to a caller
// with a valid key; `check` says whether that object is visible to it.
using VisibleCheck = std::function<absl::Status(const std::string& id, const Principal& who)>;

httplib::Server::Handler PageHandler(Authenticator* auth, std::string page, VisibleCheck check) {
  return [auth, page = std::move(page), check = std::move(check)](const httplib::Request& req,
                                                                  httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    absl::StatusOr<Principal> who = HttpPrincipal(auth, req);
    if (!who.ok()) {
      res.status = 401;
      res.set_content(RenderLogin(std::string(who.status().message()), req.path), kHtmlType);
      return;
    }
    const std::string id = PathParam(req, 1);
    if (check) {
      absl::Status visible = check(id, *who);
      if (!visible.ok()) {
        res.status = HttpStatusFor(visible);
        res.set_content(RenderPage(page, id, std::string(visible.message())), kHtmlType);
        return;
      }
    }
    res.set_content(RenderPage(page, id), kHtmlType);
  };
}

}  // namespace

std::string_view DashboardAsset(std::string_view name) {
  for (const Asset& a : kAssets) {
    if (a.name == name) return std::string_view(a.begin, static_cast<size_t>(a.end - a.begin));
  }
  return {};
}

std::string HtmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string RenderPage(const std::string& page, const std::string& id, const std::string& message) {
  std::string nav;
  for (const auto& [key, label] : kNav) {
    const bool current = page.rfind(key, 0) == 0 || (page == "job" && key == std::string("jobs")) ||
                         (page == "model" && key == std::string("models"));
    absl::StrAppend(&nav, "<a href=\"/", key, "\"", current ? " aria-current=\"page\"" : "", ">",
                    label, "</a>");
  }
  return absl::StrCat(
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>compressd</title><link rel=\"stylesheet\" href=\"/static/app.css\">"
      "<script src=\"/static/chart.js\" defer></script>"
      "<script src=\"/static/app.js\" defer></script></head>\n"
      "<body data-page=\"",
      HtmlEscape(page), "\" data-id=\"", HtmlEscape(id),
      "\"><header><a class=\"brand\" href=\"/\">compressd</a><nav aria-label=\"Main\">", nav,
      "</nav><span id=\"whoami\" class=\"whoami\"></span></header>\n<main id=\"main\">",
      message.empty() ? "<p class=\"loading\">Loading&hellip;</p>"
                      : absl::StrCat("<h1>Not available</h1><p role=\"alert\" id=\"error\">",
                                     HtmlEscape(message), "</p>"),
      "</main>\n</body></html>\n");
}

void RegisterDashboardPages(httplib::Server& server, const ServerCore& core, Authenticator* auth) {
  const VisibleCheck none;
  server.Get("/", PageHandler(auth, "jobs", none));
  server.Get("/jobs", PageHandler(auth, "jobs", none));
  server.Get("/models", PageHandler(auth, "models", none));
  server.Get("/datasets", PageHandler(auth, "datasets", none));
  server.Get("/workers", PageHandler(auth, "workers", none));
  server.Get(absl::StrCat("/jobs/", kIdPattern),
             PageHandler(auth, "job", [core](const std::string& id, const Principal& who) {
               return core.jobs.Get(id, who.scope()).status();
             }));
  server.Get(absl::StrCat("/models/", kIdPattern),
             PageHandler(auth, "model", [core](const std::string& id, const Principal& who) {
               return core.models.GetModel(id, who.scope()).status();
             }));
  server.Get("/static/([a-z.]+)", [](const httplib::Request& req, httplib::Response& res) {
    for (const Asset& a : kAssets) {
      if (a.name != PathParam(req, 1)) continue;
      res.set_header("Cache-Control", "max-age=300");
      res.set_content(a.begin, static_cast<size_t>(a.end - a.begin), std::string(a.type).c_str());
      return;
    }
    res.status = 404;
    res.set_content("no such file\n", kTextType);
  });
}

}  // namespace compressd
