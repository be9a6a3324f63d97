// The dashboard's pages: one HTML shell per page (jobs, a job, models, a
// model, datasets, workers) that server/http/assets/app.js fills from the
// JSON API (dashboard_api.h), plus the static assets it needs, all compiled
// into the binary (Chart.js from Debian's libjs-chart.js included), so the
// dashboard works offline with nothing else installed.
//
//   GET /, /jobs, /jobs/ID, /models, /models/ID, /datasets, /workers
//   GET /static/app.js, /static/app.css, /static/chart.js
//
// A page asked for without a valid key is the login form (401); a job or
// model the key cannot see is 404, the same as one that does not exist.
#pragma once

#include <httplib.h>

#include <string>
#include <string_view>

#include "server/auth/authenticator.h"
#include "server/server_core.h"

namespace compressd {

// `auth` null: no key checks (tests of the HTTP layer alone).
void RegisterDashboardPages(httplib::Server& server, const ServerCore& core, Authenticator* auth);

// The shell of page `page` ("jobs", "job", ...) about object `id` ("" for a
// list), with `message` shown instead of the page's content when non-empty.
std::string RenderPage(const std::string& page, const std::string& id,
                       const std::string& message = "");

// An embedded asset's bytes by name ("app.js", "app.css", "chart.js"); empty
// for an unknown name.
std::string_view DashboardAsset(std::string_view name);

// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string HtmlEscape(const std::string& text);

}  // namespace compressd
