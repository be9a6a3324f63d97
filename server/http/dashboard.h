// Renders the HTML dashboard (pure function, testable without a server).
#pragma once

#include <string>

#include "compressd/v1/compressd.pb.h"

namespace compressd {

struct DashboardData {
  v1::ListJobsResponse jobs;  // most recent first
  double workers_connected = 0;
  double workers_busy = 0;
  double queue_depth = 0;
  int refresh_seconds = 2;
};

std::string RenderDashboard(const DashboardData& data);
// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string HtmlEscape(const std::string& text);

}  // namespace compressd
