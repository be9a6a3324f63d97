#include "server/http/dashboard.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/core/job_state.h"

namespace compressd {
namespace {

std::string FormatTime(int64_t ms) {
  if (ms <= 0) {
    return "";
  }
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(ms), absl::UTCTimeZone());
}

std::string FormatProgress(const v1::Progress& p) {
  if (p.stage().empty() && p.total() == 0) {
    return "";
  }
  std::string out = p.stage();
  if (p.total() > 0) {
    absl::StrAppend(&out, " ", p.current(), "/", p.total());
  }
  if (!p.message().empty()) {
    absl::StrAppend(&out, " ", p.message());
  }
  return out;
}

std::string JobRow(const v1::Job& job) {
  const std::string state(JobStateName(job.state()));
  return absl::StrCat("<tr><td>", HtmlEscape(job.id()), "</td><td>", HtmlEscape(job.model_id()),
                      "</td><td class=\"", HtmlEscape(state), "\">", HtmlEscape(state), "</td><td>",
                      HtmlEscape(FormatProgress(job.progress())), "</td><td>", job.attempts(), "/",
                      job.max_attempts(), "</td><td>", FormatTime(job.create_time_ms()),
                      "</td><td>", HtmlEscape(job.error()), "</td></tr>\n");
}

constexpr char kStyle[] =
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
    ".SUCCEEDED{color:green}.FAILED{color:red}.RUNNING{color:#06c}.CANCELLED{color:gray}";

}  // namespace

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

std::string RenderDashboard(const DashboardData& data) {
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"refresh\" content=\"",
      data.refresh_seconds,
      "\">"
      "<title>compressd</title><style>",
      kStyle, "</style></head><body>\n<h1>compressd</h1>\n", "<p>Workers connected: <b>",
      data.workers_connected, "</b> (busy: ", data.workers_busy, ") &middot; Queue depth: <b>",
      data.queue_depth, "</b></p>\n",
      "<h2>Recent jobs</h2>\n<table><tr><th>Job</th><th>Model</th><th>State</th>"
      "<th>Progress</th><th>Attempts</th><th>Created (UTC)</th><th>Error</th></tr>\n");
  for (const v1::Job& job : data.jobs.jobs()) {
    absl::StrAppend(&html, JobRow(job));
  }
  if (data.jobs.jobs().empty()) {
    absl::StrAppend(&html, "<tr><td colspan=\"7\">No jobs yet.</td></tr>\n");
  }
  absl::StrAppend(&html,
                  "</table>\n<p><a href=\"/api/jobs\">/api/jobs</a> &middot; "
                  "<a href=\"/metrics\">/metrics</a></p>\n</body></html>\n");
  return html;
}

}  // namespace compressd
