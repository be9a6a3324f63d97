// The evaluation windows of the shared protocol (ppl-persuasion, ppl-kjv in
// shared/data/README.md): the tokenized text is cut into non-overlapping
// windows of `window` tokens from its start, and the first `n_windows` are
// used. Each window is evaluated independently from its first token, so a
// window of L tokens predicts L - 1 of them. Stateless.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace compressd::engine {

struct WindowOptions {
  int64_t window = 512;     // tokens per window, >= 2
  int64_t n_windows = 64;   // 0: every full window of the text
  int64_t batch_windows = 8;  // windows per forward pass (memory vs. speed)
};

// INVALID_ARGUMENT for window < 2, n_windows < 0, batch_windows < 1, or a
// text shorter than n_windows full windows (the message gives both counts).
absl::StatusOr<std::vector<std::vector<int32_t>>> CutWindows(const std::vector<int32_t>& tokens,
                                                             const WindowOptions& options);

}  // namespace compressd::engine
