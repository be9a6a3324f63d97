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
  if (grid.fp8 &&
      (grid.bits != 8 || grid.group_size != -1 || !grid.symmetric || grid.scale_bits != 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor,
                     ": an fp8 grid is 8 bits per channel (group_size -1), symmetric, without "
                     "scale_bits"));
  }
  if (grid.scale_bits == 0) return absl::OkStatus();
  if (grid.scale_bits < 2 || grid.scale_bits > 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        tensor, ": scale_bits must be 0 (float scales) or in [2, 8], got ", grid.scale_bits));
  }
  if (grid.group_size <= 0 || kScaleSuperGroup % grid.group_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": scale_bits needs a group_size that divides ", kScaleSuperGroup,
                     " (got ", grid.group_size, ")"));
  }
  return absl::OkStatus();
}

int LatticeMax(const QuantGrid& grid) {
  return grid.symmetric ? (1 << (grid.scale_bits - 1)) - 1 : (1 << grid.scale_bits) - 1;
}

namespace {

// The smallest fp16 step that puts `largest` at or below smax steps.
float Step(float largest, int smax) {
  if (!(largest > 0.0f)) return 1.0f;
  return RoundUpToHalf(largest / static_cast<float>(smax));
}

}  // namespace

LatticeSteps SuperGroupLattice(const QuantGrid& grid, const GridParam* params, int64_t n) {
  float max_scale = 0.0f, max_min = 0.0f;
  for (int64_t g = 0; g < n; ++g) {
    if (params[g].empty) continue;
    max_scale = std::max(max_scale, params[g].scale);
    max_min = std::max(max_min, params[g].min);
  }
  const int smax = LatticeMax(grid);
  return LatticeSteps{Step(max_scale, smax), grid.symmetric ? 1.0f : Step(max_min, smax)};
}

LatticeSteps SuperGroupSteps(const float* x, int64_t k, const uint8_t* pruned,
                             const QuantGrid& grid) {
  GridParam params[kScaleSuperGroup];
  int64_t n = 0;
  for (int64_t c0 = 0; c0 < k; c0 += grid.group_size) {
    params[n++] =
        FindGridParam(x + c0, std::min(grid.group_size, k - c0),
                      pruned != nullptr ? pruned + c0 : nullptr, grid.bits, grid.symmetric);
  }
  return SuperGroupLattice(grid, params, n);
}

void OnLattice(const QuantGrid& grid, const LatticeSteps& steps, GridParam* p) {
  const float smax = static_cast<float>(LatticeMax(grid));
  if (p->empty) {
    p->scale = steps.d;
    if (!grid.symmetric) p->zero = 0.0f;  // m = 0: the group's zeros stay exactly 0
    return;
  }
  p->scale = steps.d * std::min(std::max(std::nearbyint(p->scale / steps.d), 1.0f), smax);
  if (grid.symmetric) return;
  const float m = std::min(std::max(std::nearbyint(p->min / steps.dmin), 0.0f), smax);
  p->zero = steps.dmin * m / p->scale;
}

void LatticeRow(const QuantGrid& grid, GridParam* params, int64_t groups) {
  if (grid.scale_bits == 0) return;
  const int64_t per_super = kScaleSuperGroup / grid.group_size;
  for (int64_t g0 = 0; g0 < groups; g0 += per_super) {
    const int64_t g1 = std::min(groups, g0 + per_super);
    const LatticeSteps steps = SuperGroupLattice(grid, params + g0, g1 - g0);
    for (int64_t g = g0; g < g1; ++g) OnLattice(grid, steps, &params[g]);
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
  p.min = -lo;
  return p;
}

GridParam FindGridParam(const float* x, int64_t k, const uint8_t* pruned, const QuantGrid& grid) {
  if (!grid.fp8) return FindGridParam(x, k, pruned, grid.bits, grid.symmetric);
  float a = 0.0f;
  for (int64_t i = 0; i < k; ++i) {
    if (pruned == nullptr || !pruned[i]) a = std::max(a, std::fabs(x[i]));
  }
  GridParam p;
  p.zero = 0.0f;
  p.empty = a == 0.0f;
  // Rounded up, so the largest weight stays within 448 steps of the stored scale.
  p.scale = p.empty ? 1.0f : RoundUpToHalf(a / kFp8E4m3Max);
  p.min = a;
  return p;
}

void QuantizedTensor::DequantizeTo(float* w) const {
  if (grid.fp8) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        w[r * cols + c] = scales[r * groups + group_index[c]] * Fp8E4m3Value(codes[r * cols + c]);
      }
    }
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = scales.data() + r * groups;
    const float* z = zeros.data() + r * groups;
    for (int64_t c = 0; c < cols; ++c) {
      const int32_t g = group_index[c];
      w[r * cols + c] = s[g] * (static_cast<float>(codes[r * cols + c]) - z[g]);
    }
  }
  if (!spqr) return;
  for (int64_t r = 0; r < rows; ++r) {
    for (int32_t k = spqr->outlier_rows[r]; k < spqr->outlier_rows[r + 1]; ++k) {
      w[r * cols + spqr->outlier_cols[k]] = spqr->outlier_values[k];
    }
  }
}

}  // namespace compressd::engine
