// The uniform integer quantization grid shared by RTN, GPTQ and SparseGPT's
// joint mode (the min-max quantizer of Frantar et al., "GPTQ: Accurate
// Post-Training Quantization for Generative Pre-trained Transformers", 2022).
//
// Math: maxq = 2^bits - 1. For a group x (entries of one row over `group_size`
// consecutive inputs): asymmetric: lo = min(x, 0), hi = max(x, 0),
// scale = (hi - lo) / maxq, zero = round(-lo / scale); symmetric: a = max|x|,
// scale = 2a / maxq, zero = (maxq + 1) / 2. An all-zero group gets [-1, 1].
// code = clamp(round(x / scale + zero), 0, maxq) (round half to even), value =
// scale * (code - zero). zero is an integer (but on an asymmetric lattice,
// below), so 0 is then exactly representable: a zero weight stays exactly zero.
//
// Scales on a lattice (scale_bits > 0; a group size that divides 256): the
// double quantization of ggml's k-quants. The groups in each run of 256 inputs
// of a row form a super-group whose scales become d * sc with one d per
// super-group, the smallest fp16 value >= max(scale) / smax, and integers
// sc = clamp(round(scale / d), 1, smax). Symmetric grids: smax =
// 2^(scale_bits - 1) - 1 (ggml's signed scales); such a grid is what Q3_K
// (bits <= 3, scale_bits <= 6) and Q6_K (bits <= 6, scale_bits <= 8) store.
// Asymmetric grids: smax = 2^scale_bits - 1 (unsigned scales), and each
// group's min -lo goes onto a second lattice, dmin * m with dmin the smallest
// fp16 value >= max(-lo) / smax and m = clamp(round(-lo / dmin), 0, smax);
// the zero point becomes dmin * m / scale, in general NOT an integer (the
// value is scale * code - dmin * m, as Q2_K (bits <= 2, scale_bits <= 4,
// groups of 16k), Q4_K and Q5_K (bits <= 4 / 5, scale_bits <= 6, groups of
// 32k) store it), so 0 is no longer exactly representable and such a grid
// cannot keep pruned weights at zero. Groups that are all zero do not count
// for d or dmin and get sc = 1 (and m = 0). A GGUF export writes these codes
// exactly (workers/engine/export/ggml_grid_encode.h).
//
// FP8 grids (fp8: FP8 E4M3, workers/engine/model/fp8.h; per channel): a
// row's scale is max|x| / 448 rounded up to float16 (the checkpoint's scale,
// exact), zero 0, code the E4M3 byte of x / scale, value scale * e4m3.
//
// Layout: weights are row-major [rows = out, cols = in]; a group is a run of
// inputs within a row; scales/zeros are [rows, groups]. Cost: O(rows * cols).
// Stateless and thread-safe.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "workers/engine/model/fp8.h"

namespace compressd::engine {

struct QuantGrid {
  int bits = 4;             // 2..8
  int64_t group_size = -1;  // inputs per group; -1: one group per row (per-channel)
  bool symmetric = true;
  int scale_bits = 0;  // 0: float scales; 2..8: scales on the k-quant lattice (above)
  bool fp8 = false;    // FP8 E4M3 codes (bits 8, per channel, symmetric; above)
};

// True when the grid's zero points may be fractional (an asymmetric lattice):
// 0 is then not exactly representable.
inline bool FractionalZeros(const QuantGrid& grid) {
  return grid.scale_bits > 0 && !grid.symmetric;
}

// Inputs per super-group of a lattice grid (ggml's k-quant super-block).
constexpr int64_t kScaleSuperGroup = 256;

// INVALID_ARGUMENT naming `tensor` and the field unless 2 <= bits <= 8,
// group_size is -1 or positive, and scale_bits is 0 or in [2, 8] with a
// group size that divides kScaleSuperGroup; an fp8 grid must be bits 8, per
// channel, symmetric, without scale_bits.
absl::Status ValidateGrid(const QuantGrid& grid, absl::string_view tensor);

inline int MaxQ(int bits) { return (1 << bits) - 1; }

// Groups per row for `cols` inputs (1 for per-channel).
int64_t GroupCount(const QuantGrid& grid, int64_t cols);

struct GridParam {
  float scale = 1.0f;
  float zero = 0.0f;
  bool empty = false;  // every entry was 0: the [-1, 1] grid
  float min = 0.0f;    // -lo before rounding (asymmetric grids; what a lattice min holds)
};

// The grid of x[0, k). Entries whose `pruned` flag is set count as 0 (pruned
// may be null).
GridParam FindGridParam(const float* x, int64_t k, const uint8_t* pruned, int bits, bool symmetric);
// The same on `grid` (an fp8 grid's scale where grid.fp8).
GridParam FindGridParam(const float* x, int64_t k, const uint8_t* pruned, const QuantGrid& grid);

// The largest lattice integer of a grid with scale_bits (above).
int LatticeMax(const QuantGrid& grid);

// The lattice steps of one super-group: d for the scales, dmin for the mins
// (asymmetric grids). 1 where every group is empty (or every min is 0).
struct LatticeSteps {
  float d = 1.0f;
  float dmin = 1.0f;
};

// The steps of a super-group whose groups have the grids params[0, n).
LatticeSteps SuperGroupLattice(const QuantGrid& grid, const GridParam* params, int64_t n);

// The steps of the super-group x[0, k) (k <= kScaleSuperGroup, pruned entries
// as 0): from the grids of its groups of the current values.
LatticeSteps SuperGroupSteps(const float* x, int64_t k, const uint8_t* pruned,
                             const QuantGrid& grid);

// Moves p onto the lattice of `steps`: its scale and, on an asymmetric grid,
// its min (setting zero = dmin * m / scale).
void OnLattice(const QuantGrid& grid, const LatticeSteps& steps, GridParam* p);

// Moves the grids of one row (groups in column order, params[g] for group g)
// onto their super-groups' lattices; no-op unless grid.scale_bits > 0.
void LatticeRow(const QuantGrid& grid, GridParam* params, int64_t groups);

// The code of x on grid p (as a float holding an integer in [0, maxq]):
// round(x / scale + zero). The zero's integer part is added after rounding, so
// for an integer zero this is round(x / scale) + zero with no rounding of the
// sum (the arithmetic the integer grids have always had).
inline float QuantizeCode(float x, const GridParam& p, int maxq) {
  const float zi = std::floor(p.zero);
  const float q = std::nearbyint(x / p.scale + (p.zero - zi)) + zi;
  return std::min(std::max(q, 0.0f), static_cast<float>(maxq));
}
inline float Dequantize(float code, const GridParam& p) { return p.scale * (code - p.zero); }

// x on `grid` with parameters p: its code into *code, its value returned
// (QuantizeCode and Dequantize, or the FP8 ones where grid.fp8).
inline float QuantizeOnGrid(float x, const GridParam& p, const QuantGrid& grid, int maxq,
                            uint8_t* code) {
  if (grid.fp8) {
    const float v = Fp8E4m3Round(x / p.scale);
    *code = Fp8E4m3Code(v);
    return p.scale * v;
  }
  const float c = QuantizeCode(x, p, maxq);
  *code = static_cast<uint8_t>(c);
  return Dequantize(c, p);
}

// What an SpQR solve (algorithms/spqr.h) stores besides the codes and the
// dequantized grids of QuantizedTensor: the sweep order (a group is a run of
// group_size sweep positions), the stat_bits codes of every group's scale and
// zero point with the float16 (scale, zero) pairs that dequantize them per
// stat_group consecutive rows, and the float16 outliers (CSR by row) that
// replace the dequantized value at their position.
struct SpqrParts {
  int stat_bits = 3;
  int64_t stat_group = 16;            // rows per statistics group
  std::vector<int32_t> perm;          // [cols]: sweep position -> input column
  std::vector<uint8_t> scale_codes;   // [groups, rows]
  std::vector<uint8_t> zero_codes;    // [groups, rows]
  std::vector<float> scale_stats;     // [groups, ceil(rows / stat_group), 2]: (scale, zero)
  std::vector<float> zero_stats;      // the same for the zero points
  std::vector<int32_t> outlier_rows;  // [rows + 1]: row r's outliers are [rows[r], rows[r+1])
  std::vector<int32_t> outlier_cols;  // [outliers]: input column
  std::vector<float> outlier_values;  // [outliers]: float16 values
};

// A quantized [rows, cols] weight: integer codes and per-(row, group) grids.
// With act-order the groups are not contiguous runs of inputs: group_index
// maps each input column to its group (GPTQ's g_idx).
struct QuantizedTensor {
  int64_t rows = 0;
  int64_t cols = 0;
  QuantGrid grid;
  int64_t groups = 0;                // per row
  std::vector<uint8_t> codes;        // [rows, cols], each in [0, 2^bits - 1] (fp8: E4M3 bytes)
  std::vector<float> scales;         // [rows, groups]
  std::vector<float> zeros;          // [rows, groups], integers unless FractionalZeros(grid)
  std::vector<int32_t> group_index;  // [cols]
  std::optional<SpqrParts> spqr;     // an SpQR solve's (then zeros are fractional)

  // Writes scale * (code - zero) (fp8: scale * e4m3(code)) into w[rows, cols],
  // then SpQR's outliers.
  void DequantizeTo(float* w) const;
};

}  // namespace compressd::engine
