// Min-max grid of one group and dequantization; see quant_grid.h for the math.
#include "workers/engine/algorithms/quant_grid.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace compressd::engine {

absl::Status ValidateGrid(const QuantGrid& grid, absl::string_view tensor) {
  if (grid.bits < 2 || grid.bits > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": quantization bits must be in [2, 8], got ", grid.bits));
  }
  if (grid.group_size != -1 && grid.group_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        tensor, ": group_size must be -1 (per-channel) or positive, got ", grid.group_size));
  }
  return absl::OkStatus();
}

int64_t GroupCount(const QuantGrid& grid, int64_t cols) {
  if (grid.group_size <= 0) return 1;
  return std::max<int64_t>(1, (cols + grid.group_size - 1) / grid.group_size);
}

GridParam FindGridParam(const float* x, int64_t k, const uint8_t* pruned, int bits,
                        bool symmetric) {
  float lo = 0.0f;
  float hi = 0.0f;
  for (int64_t i = 0; i < k; ++i) {
    const float v = (pruned != nullptr && pruned[i]) ? 0.0f : x[i];
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (symmetric) {
    hi = std::max(-lo, hi);
    lo = -hi;
  }
  if (lo == 0.0f && hi == 0.0f) {
    lo = -1.0f;
    hi = 1.0f;
  }
  const int maxq = MaxQ(bits);
  GridParam p;
  p.scale = (hi - lo) / static_cast<float>(maxq);
  p.zero = symmetric ? static_cast<float>((maxq + 1) / 2) : std::nearbyint(-lo / p.scale);
  return p;
}

void QuantizedTensor::DequantizeTo(float* w) const {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = scales.data() + r * groups;
    const float* z = zeros.data() + r * groups;
    for (int64_t c = 0; c < cols; ++c) {
      const int32_t g = group_index[c];
      w[r * cols + c] = s[g] * (static_cast<float>(codes[r * cols + c]) - z[g]);
    }
  }
}

}  // namespace compressd::engine
