// AWQ's weight clipping (Lin et al., "AWQ: Activation-aware Weight
// Quantization for LLM Compression and Acceleration", MLSys 2024; the search
// of the authors' llm-awq and AutoAWQ `auto_clip`): after the scales, each
// (row, quantization group) of a linear gets its range shrunk to
// [-r max|w_g|, r max|w_g|] for the ratio r in {1, 1 - 1/n, ..., 1 - m/n}
// (m = floor(max_shrink * n)) whose round-to-nearest error on the group's
// inputs is smallest:
//   err_g(r) = e^T H_gg e,  e = w_g - Q(clamp(w_g, -r a, r a)),  a = max|w_g|,
// H_gg the group's diagonal block of the input Hessian H = 2 X X^T / n (the
// squared error of the group's partial outputs over the calibration tokens,
// which is what AutoAWQ measures on sampled tokens). Ties keep the larger r, so
// r = 1 (no clipping) wins unless a shrink is strictly better. The weights are
// clamped in place; the stage's quantizer then runs on them. A grid with
// scale_bits is scored with every group at the same r (the lattice couples a
// super-group's groups only through their largest scale).
//
// Cost: (m + 1) RTN passes over [rows, cols] and (m + 1) products of
// [rows, g] x [g, g] per group (rows x cols x cols per candidate per channel);
// candidates scored in parallel on `threads`. Memory: two copies of the weights
// per thread.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/algorithms/quant_grid.h"

namespace compressd::engine {

struct AwqClipOptions {
  QuantGrid grid;
  int grid_points = 20;     // n
  double max_shrink = 0.5;  // m / n
  int threads = 1;
};

struct AwqClipResult {
  std::vector<float> ratio;    // [rows, groups]: the chosen r
  double error_unclipped = 0;  // sum of err_g(1) over rows and groups, / sum w^T H_gg w
  double error = 0;            // ... at the chosen ratios (<= error_unclipped)
  double clipped = 0;          // fraction of (row, group) pairs with r < 1
};

// Searches and clamps w [rows, cols] (row-major) with input Hessian h
// [cols, cols]. INVALID_ARGUMENT naming `name` for a bad grid, options or
// non-finite weights. Stateless and thread-safe.
absl::StatusOr<AwqClipResult> AwqClip(float* w, int64_t rows, int64_t cols, const float* h,
                                      const AwqClipOptions& options, absl::string_view name);

}  // namespace compressd::engine
