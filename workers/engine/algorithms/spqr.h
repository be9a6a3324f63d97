// SpQR (Dettmers, Svirschevski, Egiazarian, Kuznedelev, Frantar, Ashkboos,
// Borzunov, Hoefler & Alistarh, "SpQR: A Sparse-Quantized Representation for
// Near-Lossless LLM Weight Compression", 2023).
//
// Math: GPTQ's OBS sweep (obs_sweep.h) in act-order over small groups of
// beta1 = group_size inputs. With U the upper Cholesky factor of the damped
// H^-1 (in sweep order) and d_j = U_jj, when the sweep reaches a group:
//  1. Outlier-aware statistics, per row: for each weight i of the group, the
//     reduction of the group's error sum_j ((Q(x_j) - x_j) / d_j)^2 when the
//     min-max grid is fitted without it (leave one out); weights whose
//     reduction exceeds the threshold t are likely outliers and are replaced
//     by the mean of the others before fitting the row's grid: asymmetric
//     min-max over [min x, max x] (a constant group: [-1, 1]), scale =
//     (max - min) / (2^bits - 1), zero = -min / scale, NOT rounded.
//  2. Second level: the scales of stat_group consecutive rows are quantized
//     with the same min-max quantizer at stat_bits (scale2, zero2 stored as
//     float16, the codes computed with those float16 values), and likewise
//     the zero points; a group whose range is too small for float16 stores
//     its midpoint m as scale2 1, zero2 -m (code 0). The weights then use the
//     dequantized scale and zero.
//  3. Each column p of the group: q = scale * (clamp(round(x / scale + zero),
//     0, maxq) - zero); error e = (x - q) / d_p. If e^2 > t the weight is an
//     outlier: it keeps its current value rounded to float16 (e = (x - q16) /
//     d_p). The error moves onto the later columns as GPTQ's does.
// The threshold is t = outlier_threshold * mean_j(var_rows(W_j) / d_j^2)
// (the paper's relative threshold; the variance is the unbiased one, of the
// permuted, dead-zeroed weights before the sweep). Without outliers t = inf
// and step 1 is the plain min-max fit.
//
// What is stored (QuantizedTensor + SpqrParts, quant_grid.h): codes, the
// second-level codes and float16 statistics, the sweep order and the
// outliers, from which DequantizeTo rebuilds the returned weights exactly;
// SpqrStoredBits counts them as the "spqr" output stores them.
//
// Layout: w row-major [out, in] (replaced by the result), h the full [in, in]
// H = 2 X X^T / n. Cost: GPTQ's (O(in^3) factor, O(out in^2) sweep in sgemm)
// plus O(out * in * group_size) for the leave-one-out fits; memory O(in^2 +
// out * in). Stateless; calls on distinct weights may run concurrently.
#pragma once

#include <cstdint>
#include <limits>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/algorithms/obs_sweep.h"

namespace compressd::engine {

struct SpqrOptions {
  int bits = 3;
  int64_t group_size = 16;
  int stat_bits = 3;
  int64_t stat_group = 16;
  // Relative threshold; infinity: no outliers.
  double outlier_threshold = 0.2;
  bool act_order = true;
  int64_t block_size = 128;  // rounded down to whole groups (at least one)
  double percdamp = 1.0;
  int threads = 1;  // for the row loops (BLAS has its own)
};

// Quantizes w in place and returns the stored form (result.quantized, with
// spqr set). relative_error is not computed (CompressLayer does).
// INVALID_ARGUMENT naming `tensor` for bad options, non-finite weights or a
// Hessian that is not positive definite after damping.
absl::StatusOr<LayerSolveResult> Spqr(float* w, int64_t rows, int64_t cols, const float* h,
                                      const SpqrOptions& options, absl::string_view tensor);

// The bits the "spqr" output stores for q (export/spqr_writer.h): codes
// packed at bits, the sweep order (16 bits per input up to 65536 inputs,
// else 32), the second-level codes packed at stat_bits, float16 statistics,
// and the outliers as CSR (32-bit row pointers, 16/32-bit columns as the
// order, float16 values).
uint64_t SpqrStoredBits(const QuantizedTensor& q);

// Whether an index up to `n` is stored in 16 bits (n <= 65536).
inline bool SpqrNarrowIndex(int64_t n) { return n <= 65536; }

}  // namespace compressd::engine
