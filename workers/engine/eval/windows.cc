#include "workers/engine/eval/windows.h"

#include "absl/strings/str_cat.h"

namespace compressd::engine {

absl::StatusOr<std::vector<std::vector<int32_t>>> CutWindows(const std::vector<int32_t>& tokens,
                                                             const WindowOptions& options) {
  if (options.window < 2) {
    return absl::InvalidArgumentError(absl::StrCat("window must be >= 2, got ", options.window));
  }
  if (options.n_windows < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("n_windows must be >= 0, got ", options.n_windows));
  }
  if (options.batch_windows < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_windows must be >= 1, got ", options.batch_windows));
  }
  const int64_t available = static_cast<int64_t>(tokens.size()) / options.window;
  const int64_t n = options.n_windows == 0 ? available : options.n_windows;
  if (n == 0 || n > available) {
    return absl::InvalidArgumentError(absl::StrCat(
        "text of ", tokens.size(), " tokens has ", available, " full windows of ", options.window,
        " tokens; ", n == 0 ? int64_t{1} : n, " needed"));
  }
  std::vector<std::vector<int32_t>> windows(n);
  for (int64_t w = 0; w < n; ++w) {
    windows[w].assign(tokens.begin() + w * options.window,
                      tokens.begin() + (w + 1) * options.window);
  }
  return windows;
}

}  // namespace compressd::engine
