// Min-max grid of one group and dequantization; see quant_grid.h for the math.
#include "workers/engine/algorithms/quant_grid.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "workers/engine/model/dtype.h"

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
  if (grid.scale_bits == 0) return absl::OkStatus();
  if (grid.scale_bits < 2 || grid.scale_bits > 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        tensor, ": scale_bits must be 0 (float scales) or in [2, 8], got ", grid.scale_bits));
  }
  if (!grid.symmetric || grid.group_size <= 0 || kScaleSuperGroup % grid.group_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": scale_bits needs a symmetric grid whose group_size divides ",
                     kScaleSuperGroup, " (got ", grid.symmetric ? "symmetric" : "asymmetric",
                     ", group_size ", grid.group_size, ")"));
  }
  return absl::OkStatus();
}

float LatticeStep(float max_scale, int scale_bits) {
  if (!(max_scale > 0.0f)) return 1.0f;
  return RoundUpToHalf(max_scale / static_cast<float>((1 << (scale_bits - 1)) - 1));
}

float OnLattice(float scale, bool empty, float d, int scale_bits) {
  const int smax = (1 << (scale_bits - 1)) - 1;
  if (empty) return d;
  const float sc = std::min(std::max(std::nearbyint(scale / d), 1.0f), static_cast<float>(smax));
  return d * sc;
}

float SuperGroupStep(const float* x, int64_t k, const uint8_t* pruned, const QuantGrid& grid) {
  float max_scale = 0.0f;
  for (int64_t c0 = 0; c0 < k; c0 += grid.group_size) {
    const GridParam p =
        FindGridParam(x + c0, std::min(grid.group_size, k - c0),
                      pruned != nullptr ? pruned + c0 : nullptr, grid.bits, grid.symmetric);
    if (!p.empty) max_scale = std::max(max_scale, p.scale);
  }
  return LatticeStep(max_scale, grid.scale_bits);
}

void LatticeRow(const QuantGrid& grid, GridParam* params, int64_t groups) {
  if (grid.scale_bits == 0) return;
  const int64_t per_super = kScaleSuperGroup / grid.group_size;
  for (int64_t g0 = 0; g0 < groups; g0 += per_super) {
    const int64_t g1 = std::min(groups, g0 + per_super);
    float max_scale = 0.0f;
    for (int64_t g = g0; g < g1; ++g) {
      if (!params[g].empty) max_scale = std::max(max_scale, params[g].scale);
    }
    const float d = LatticeStep(max_scale, grid.scale_bits);
    for (int64_t g = g0; g < g1; ++g) {
      params[g].scale = OnLattice(params[g].scale, params[g].empty, d, grid.scale_bits);
    }
  }
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
  GridParam p;
  if (lo == 0.0f && hi == 0.0f) {
    lo = -1.0f;
    hi = 1.0f;
    p.empty = true;
  }
  const int maxq = MaxQ(bits);
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
