// Round-to-nearest quantization; see rtn.h.
#include "workers/engine/algorithms/rtn.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd::engine {

absl::StatusOr<QuantizedTensor> QuantizeRtn(float* w, int64_t rows, int64_t cols,
                                            const QuantGrid& grid, absl::string_view tensor) {
  RETURN_IF_ERROR(ValidateGrid(grid, tensor));
  if (w == nullptr || rows <= 0 || cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": empty weight [", rows, ", ", cols, "]"));
  }
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(tensor, ": weight [", i / cols, ", ", i % cols, "] is not finite"));
    }
  }
  QuantizedTensor q;
  q.rows = rows;
  q.cols = cols;
  q.grid = grid;
  q.groups = GroupCount(grid, cols);
  q.codes.resize(rows * cols);
  q.scales.resize(rows * q.groups);
  q.zeros.resize(rows * q.groups);
  q.group_index.resize(cols);
  const int64_t span = grid.group_size > 0 ? grid.group_size : cols;
  for (int64_t c = 0; c < cols; ++c) q.group_index[c] = static_cast<int32_t>(c / span);
  const int maxq = MaxQ(grid.bits);
  std::vector<GridParam> params(q.groups);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = w + r * cols;
    for (int64_t g = 0; g < q.groups; ++g) {
      const int64_t c0 = g * span;
      params[g] = FindGridParam(row + c0, std::min(c0 + span, cols) - c0, nullptr, grid);
    }
    LatticeRow(grid, params.data(), q.groups);
    for (int64_t g = 0; g < q.groups; ++g) {
      const int64_t c0 = g * span;
      const int64_t c1 = std::min(c0 + span, cols);
      const GridParam& p = params[g];
      q.scales[r * q.groups + g] = p.scale;
      q.zeros[r * q.groups + g] = p.zero;
      for (int64_t c = c0; c < c1; ++c) {
        row[c] = QuantizeOnGrid(row[c], p, grid, maxq, &q.codes[r * cols + c]);
      }
    }
  }
  return q;
}

}  // namespace compressd::engine
