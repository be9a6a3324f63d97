// SparseGPT (Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be
// Accurately Pruned in One-Shot", 2023).
//
// Math: the OBS column sweep of obs_sweep.h with pruning decisions: the
// saliency of weight (r, p) is w_rp^2 / U_pp^2 (U: upper Cholesky factor of the
// damped H^-1), evaluated on the already-updated weights. Adaptive mask
// selection: unstructured masks are chosen per block of block_size columns
// when the sweep reaches the block, either over the whole block (all rows
// together, as in the paper's Algorithm 1; MaskScope::kBlock) or per row of
// the block (kRow: every row gets the same sparsity); N:M masks are chosen for
// each run of M inputs of each row when the sweep reaches it (N kept).
// Pruned weights become 0 and their error is propagated. Joint quantization
// (the paper's Section 3.4): with `grid`, the weights that survive are
// quantized in the same pass, the grid of a group being computed from the
// updated weights with the entries already pruned counted as 0.
// Dead inputs (H_jj == 0) get H_jj = 1 and zero weights.
//
// Layout: w row-major [out, in] (replaced in place), h the full symmetric
// [in, in] H = 2 X X^T / n (hessian.h).
// Cost: O(in^3) for the factor, O(out * in^2) flops for the sweep (mostly
// sgemm), O(out * block) per block for mask selection, plus O(out * in^2) for
// the reported error; memory O(in^2 + out * in).
#pragma once

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/algorithms/obs_sweep.h"
#include "workers/engine/algorithms/solver_backend.h"
#include "workers/engine/algorithms/quant_grid.h"

namespace compressd::engine {

enum class MaskScope { kBlock, kRow };

struct SparseGptOptions {
  double sparsity = 0.5;  // unstructured, used when nm_n == 0
  int nm_n = 0;           // N:M: keep nm_n of every nm_m inputs
  int nm_m = 0;
  MaskScope mask_scope = MaskScope::kBlock;
  int64_t block_size = 128;  // mask-selection and lazy-update block (N:M: rounded down to M)
  double percdamp = 0.01;
  std::optional<QuantGrid> grid;  // joint quantization of the kept weights
  bool report_error = true;
  int threads = 1;
  SolverBackend* solver = nullptr;  // where the factor and sweep run (null: the CPU)
};

// Prunes (and with a grid quantizes) w in place. Returns the mask
// (LayerSolveResult::pruned), the codes and grids when quantized, and the
// relative reconstruction error. INVALID_ARGUMENT naming `tensor` for bad
// options, non-finite weights or a Hessian that is not positive definite
// after damping. Stateless; calls on distinct weights may run concurrently.
absl::StatusOr<LayerSolveResult> SparseGpt(float* w, int64_t rows, int64_t cols, const float* h,
                                           const SparseGptOptions& options,
                                           absl::string_view tensor);

}  // namespace compressd::engine
