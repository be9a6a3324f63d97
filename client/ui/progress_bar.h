// Terminal progress bar: a pure rendering function plus a small stateful
// writer that redraws the bar in place on a terminal. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace compressd::client {

// What the bar shows. `total` <= 0 means unknown (no percentage).
struct ProgressView {
  std::string stage;  // e.g. "prune", "upload"
  int64_t current = 0;
  int64_t total = 0;
  bool bytes = false;  // format current/total as sizes (KiB/MiB/GiB)
  double elapsed_seconds = 0;
  std::string message;  // optional trailing text
};

// Renders one line of at most `width` characters (no newline, no escapes), e.g.
//   "prune [##########          ]  11/22  50%  00:12  model.layers.10"
std::string RenderProgressBar(const ProgressView& view, int width);

// "512 B", "1.5 KiB", "3.0 MiB", "2.25 GiB".
std::string FormatBytes(int64_t bytes);
// "00:07", "12:34", "1:02:03".
std::string FormatElapsed(double seconds);

// Draws the bar on `out` (a terminal) with carriage returns. Call Clear()
// before printing other lines to the same terminal, then Draw() again.
class ProgressBar {
 public:
  ProgressBar(std::ostream& out, int width) : out_(out), width_(width) {}
  ~ProgressBar() { Finish(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Redraws at most every 100 ms, except for a new stage or completion.
  void Update(const ProgressView& view);
  void Clear();
  void Redraw();
  // Leaves the last bar on its own line.
  void Finish();

 private:
  std::ostream& out_;
  int width_;
  ProgressView last_;
  bool has_view_ = false;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_;
};

// Terminal width from $COLUMNS / ioctl, or 80.
int TerminalWidth();

}  // namespace compressd::client
