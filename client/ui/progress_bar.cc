#include "client/ui/progress_bar.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace compressd::client {
namespace {

constexpr int kMinBarCells = 10;
constexpr int kMaxBarCells = 30;

std::string Counts(const ProgressView& view, int64_t current) {
  if (view.bytes) {
    if (view.total <= 0) return FormatBytes(current);
    return absl::StrCat(FormatBytes(current), "/", FormatBytes(view.total));
  }
  if (view.total <= 0) return absl::StrCat(current, "/?");
  return absl::StrCat(current, "/", view.total);
}

}  // namespace

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024.0;
  int unit = 0;
  while (value >= 1024.0 && unit < 3) {
    value /= 1024.0;
    ++unit;
  }
  return absl::StrFormat("%.*f %s", value < 10 ? 2 : 1, value, units[unit]);
}

std::string FormatElapsed(double seconds) {
  const int64_t total = seconds > 0 ? static_cast<int64_t>(seconds) : 0;
  const int64_t h = total / 3600;
  const int64_t m = (total / 60) % 60;
  const int64_t s = total % 60;
  if (h > 0) return absl::StrFormat("%d:%02d:%02d", h, m, s);
  return absl::StrFormat("%02d:%02d", m, s);
}

std::string RenderProgressBar(const ProgressView& view, int width) {
  const bool known = view.total > 0;
  const int64_t current = known ? std::clamp<int64_t>(view.current, 0, view.total) : view.current;
  const double fraction =
      known ? static_cast<double>(current) / static_cast<double>(view.total) : 0;

  std::string counts = Counts(view, current);
  std::string percent = known ? absl::StrFormat("%3d%%", static_cast<int>(fraction * 100)) : "";
  std::string elapsed = FormatElapsed(view.elapsed_seconds);
  std::string stage = view.stage.empty() ? "working" : view.stage;

  // Fixed parts: "<stage> [" + cells + "] " + counts + "  " + percent + "  " + elapsed.
  const int fixed = static_cast<int>(stage.size() + 3 + counts.size() + 2 +
                                     (percent.empty() ? 0 : percent.size() + 2) + elapsed.size());
  const int cells = std::clamp(width - fixed, kMinBarCells, kMaxBarCells);
  const int filled = known ? static_cast<int>(std::floor(fraction * cells)) : 0;

  std::string line = absl::StrCat(stage, " [", std::string(filled, '#'),
                                  std::string(cells - filled, known ? '-' : ' '), "] ", counts);
  if (!percent.empty()) absl::StrAppend(&line, "  ", percent);
  absl::StrAppend(&line, "  ", elapsed);
  if (!view.message.empty()) absl::StrAppend(&line, "  ", view.message);
  if (width > 0 && static_cast<int>(line.size()) > width) line.resize(width);
  return line;
}

void ProgressBar::Update(const ProgressView& view) {
  const auto now = std::chrono::steady_clock::now();
  const bool same_stage = has_view_ && view.stage == last_.stage;
  const bool complete = view.total > 0 && view.current >= view.total;
  last_ = view;
  has_view_ = true;
  if (same_stage && !complete && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  Redraw();
}

void ProgressBar::Clear() {
  if (!drawn_) return;
  out_ << "\r\x1b[K" << std::flush;
  drawn_ = false;
}

void ProgressBar::Redraw() {
  if (!has_view_) return;
  // One column short so the cursor never wraps onto the next line.
  out_ << "\r" << RenderProgressBar(last_, width_ - 1) << "\x1b[K" << std::flush;
  drawn_ = true;
}

void ProgressBar::Finish() {
  if (!drawn_) return;
  out_ << "\n" << std::flush;
  drawn_ = false;
  has_view_ = false;
}

int TerminalWidth() {
  if (const char* columns = std::getenv("COLUMNS")) {
    const int value = std::atoi(columns);
    if (value > 0) return value;
  }
  struct winsize size {};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

}  // namespace compressd::client
