// The uniform integer quantization grid shared by RTN, GPTQ and SparseGPT's
// joint mode (the min-max quantizer of Frantar et al., "GPTQ: Accurate
// Post-Training Quantization for Generative Pre-trained Transformers", 2022).
//
// Math: maxq = 2^bits - 1. For a group x (entries of one row over `group_size`
// consecutive inputs): asymmetric: lo = min(x, 0), hi = max(x, 0),
// scale = (hi - lo) / maxq, zero = round(-lo / scale); symmetric: a = max|x|,
// scale = 2a / maxq, zero = (maxq + 1) / 2. An all-zero group gets [-1, 1].
// code = clamp(round(x / scale) + zero, 0, maxq) (round half to even), value =
// scale * (code - zero). zero is an integer, so 0 is always exactly
// representable: a zero weight stays exactly zero.
//
// Layout: weights are row-major [rows = out, cols = in]; a group is a run of
// inputs within a row; scales/zeros are [rows, groups]. Cost: O(rows * cols).
// Stateless and thread-safe.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace compressd::engine {

struct QuantGrid {
  int bits = 4;             // 2..8
  int64_t group_size = -1;  // inputs per group; -1: one group per row (per-channel)
  bool symmetric = true;
};

// INVALID_ARGUMENT naming `tensor` and the field unless 2 <= bits <= 8 and
// group_size is -1 or positive.
absl::Status ValidateGrid(const QuantGrid& grid, absl::string_view tensor);

inline int MaxQ(int bits) { return (1 << bits) - 1; }

// Groups per row for `cols` inputs (1 for per-channel).
int64_t GroupCount(const QuantGrid& grid, int64_t cols);

struct GridParam {
  float scale = 1.0f;
  float zero = 0.0f;
};

// The grid of x[0, k). Entries whose `pruned` flag is set count as 0 (pruned
// may be null).
GridParam FindGridParam(const float* x, int64_t k, const uint8_t* pruned, int bits, bool symmetric);

// The code of x on grid p (as a float holding an integer in [0, maxq]).
inline float QuantizeCode(float x, const GridParam& p, int maxq) {
  const float q = std::nearbyint(x / p.scale) + p.zero;
  return std::min(std::max(q, 0.0f), static_cast<float>(maxq));
}
inline float Dequantize(float code, const GridParam& p) { return p.scale * (code - p.zero); }

// A quantized [rows, cols] weight: integer codes and per-(row, group) grids.
// With act-order the groups are not contiguous runs of inputs: group_index
// maps each input column to its group (GPTQ's g_idx).
struct QuantizedTensor {
  int64_t rows = 0;
  int64_t cols = 0;
  QuantGrid grid;
  int64_t groups = 0;                // per row
  std::vector<uint8_t> codes;        // [rows, cols], each in [0, 2^bits - 1]
  std::vector<float> scales;         // [rows, groups]
  std::vector<float> zeros;          // [rows, groups], integers
  std::vector<int32_t> group_index;  // [cols]

  // Writes scale * (code - zero) into w[rows, cols].
  void DequantizeTo(float* w) const;
};

}  // namespace compressd::engine
