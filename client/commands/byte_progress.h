// A progress bar for byte counts (hashing, uploads, downloads), drawn only
// when the context allows it (stderr is a terminal, no --json). Not thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "client/cli/context.h"
#include "client/commands/upload.h"
#include "client/ui/progress_bar.h"

namespace compressd::client {

// Draws byte progress for one stage at a time ("hash", "upload", a file name).
class ByteProgressBar {
 public:
  explicit ByteProgressBar(CommandContext& context) {
    if (context.show_progress_bar()) bar_.emplace(context.err(), TerminalWidth());
  }
  ByteProgressFn Stage(const std::string& stage) {
    if (!bar_) return nullptr;
    start_ = std::chrono::steady_clock::now();
    return [this, stage](int64_t done, int64_t total) {
      ProgressView view;
      view.stage = stage;
      view.current = done;
      view.total = total;
      view.bytes = true;
      view.elapsed_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      bar_->Update(view);
    };
  }
  void Finish() {
    if (bar_) bar_->Finish();
  }

 private:
  std::optional<ProgressBar> bar_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace compressd::client
