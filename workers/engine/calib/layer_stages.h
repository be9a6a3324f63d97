// A recipe's stages applied to one linear layer's weight, in order:
// magnitude, wanda, sparsegpt, gptq, rtn, spqr (recipe.proto), each with the
// layer's overrides merged in (EffectiveStage). The solvers live in
// algorithms/; this file maps recipe fields onto their options.
//
// Wanda, SparseGPT and GPTQ need the layer Hessian H = 2 X X^T / n of the
// layer's calibration inputs (hessian.h); magnitude and RTN do not. With H,
// the result carries the relative reconstruction error of the final weight
// against the original, ||W X - W' X||^2 / ||W X||^2 (computed once, after
// the last stage, from H). The solves, the factor and the error run on
// `solver` (null: the CPU's, with which calls on distinct weights may run
// concurrently; a device solver takes one call at a time).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "compressd/v1/recipe.pb.h"
#include "workers/engine/algorithms/obs_sweep.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/algorithms/solver_backend.h"

namespace compressd::engine {

struct LayerOutcome {
  std::optional<engine::QuantizedTensor> quantized;  // from the quantizing stage
  double relative_error = -1.0;                      // < 0: no H, not computed
  uint64_t zeros = 0;
  int64_t dead_inputs = 0;  // inputs with H_jj == 0 (their weights are zeroed)
  std::optional<engine::ActOrderCheck> act_order_check;  // GPTQ's massive-input comparison
  int stages_applied = 0;   // stages not skipped by an override
  double solve_seconds = 0;
  double error_seconds = 0;
};

// The grid a recipe's QuantGridSpec describes.
QuantGrid GridOf(const v1::QuantGridSpec& spec);

// Bits per parameter of a stored weight: bits + the grid's fp16 scale (and,
// asymmetric, a zero point of `bits`) per group; 16 when not quantized; for
// SpQR exactly what the spqr output stores (SpqrStoredBits).
double BitsPerParameter(const std::optional<engine::QuantizedTensor>& quantized);

// Replaces w [rows, cols] in place. `h` may be null only when no stage needs
// it (FAILED_PRECONDITION naming the stage otherwise). INVALID_ARGUMENT
// naming `tensor` from the solvers (bad shapes for N:M, a Hessian not
// positive definite after damping, non-finite values). `original`, when
// given, holds w's values before the call (the reconstruction error's
// reference; else w is copied for it: one layer's size more at the peak).
absl::StatusOr<LayerOutcome> CompressLayer(const v1::Recipe& recipe, const std::string& module,
                                           const std::string& tensor, float* w, int64_t rows,
                                           int64_t cols, const float* h, int threads,
                                           const float* original = nullptr,
                                           SolverBackend* solver = nullptr);

}  // namespace compressd::engine
