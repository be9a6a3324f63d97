#include "client/ui/event_lines.h"

#include <cmath>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace compressd::client {
namespace {

// "layer model.layers.0.mlp.up_proj" (labels sorted by key).
std::string LabelText(const v1::MetricPoint& metric) {
  const std::map<std::string, std::string> sorted(metric.labels().begin(), metric.labels().end());
  std::string text;
  for (const auto& [key, value] : sorted) {
    absl::StrAppend(&text, text.empty() ? "" : " ", key, " ", value);
  }
  return text;
}

std::string MetricText(const v1::MetricPoint& metric) {
  return absl::StrCat(metric.name(), "=", FormatMetricValue(metric.name(), metric.value()));
}

}  // namespace

std::string FormatMetricValue(const std::string& name, double value) {
  if (!std::isfinite(value)) return absl::StrCat(value);
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrFormat("%.0f", value);
  }
  if (absl::EndsWith(name, "seconds")) return absl::StrFormat("%.2f", value);
  const double magnitude = std::fabs(value);
  if (magnitude >= 1e-3 && magnitude < 1e6) return absl::StrFormat("%.3f", value);
  return absl::StrFormat("%.4g", value);
}

std::string FormatEvent(const v1::JobEvent& event) {
  switch (event.payload_case()) {
    case v1::JobEvent::kState: {
      const v1::StateChange& s = event.state();
      std::string line = "state ";
      if (s.from() != v1::JOB_STATE_UNSPECIFIED) {
        absl::StrAppend(&line, v1::JobState_Name(s.from()), " -> ");
      }
      absl::StrAppend(&line, v1::JobState_Name(s.to()));
      if (!s.reason().empty()) absl::StrAppend(&line, ": ", s.reason());
      return line;
    }
    case v1::JobEvent::kLog:
      return absl::StrCat("[", event.log().level().empty() ? "info" : event.log().level(), "] ",
                          event.log().message());
    case v1::JobEvent::kMetric: {
      const std::string labels = LabelText(event.metric());
      return labels.empty() ? MetricText(event.metric())
                            : absl::StrCat(labels, " ", MetricText(event.metric()));
    }
    case v1::JobEvent::kProgress: {
      const v1::Progress& p = event.progress();
      std::string line = absl::StrCat("progress ", p.stage(), " ", p.current(), "/", p.total());
      if (!p.message().empty()) absl::StrAppend(&line, " ", p.message());
      return line;
    }
    case v1::JobEvent::PAYLOAD_NOT_SET:
      break;
  }
  return absl::StrCat("event ", event.sequence());
}

std::vector<std::string> EventLines::Add(const v1::JobEvent& event) {
  if (event.payload_case() == v1::JobEvent::kProgress) return {};
  if (event.payload_case() == v1::JobEvent::kMetric) {
    const std::string labels = LabelText(event.metric());
    if (!metric_line_.empty() && labels == metric_labels_) {
      absl::StrAppend(&metric_line_, " ", MetricText(event.metric()));
      return {};
    }
    std::vector<std::string> lines = Flush();
    metric_labels_ = labels;
    metric_line_ = FormatEvent(event);
    return lines;
  }
  std::vector<std::string> lines = Flush();
  lines.push_back(FormatEvent(event));
  return lines;
}

std::vector<std::string> EventLines::Flush() {
  if (metric_line_.empty()) return {};
  std::vector<std::string> lines = {std::move(metric_line_)};
  metric_line_.clear();
  metric_labels_.clear();
  return lines;
}

}  // namespace compressd::client
