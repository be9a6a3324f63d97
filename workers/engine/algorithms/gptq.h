// GPTQ (Frantar, Ashkboos, Hoefler & Alistarh, "GPTQ: Accurate Post-Training
// Quantization for Generative Pre-trained Transformers", 2022).
//
// Math: quantize the input columns one at a time onto the grid of
// quant_grid.h and move each column's error onto the columns not yet
// quantized with the OBS update through the Cholesky factor of the damped
// inverse Hessian (obs_sweep.h). Grids are per (row, group of group_size
// inputs), or per row (group_size -1); a group's grid is computed when the
// sweep reaches its first column, from the already-updated weights.
// act_order sweeps inputs by decreasing H_jj; with static_groups the grids are
// computed up front on the unpermuted weights over contiguous input groups
// (so the packed form needs no g_idx), otherwise groups follow the sweep order
// and QuantizedTensor::group_index records them. Dead inputs (H_jj == 0)
// get H_jj = 1 and zero weights.
//
// Massive activations (massive_fallback, with act_order): when the largest
// H_jj is at least kMassiveInputRatio times the median of the live inputs'
// (a few inputs carry most of the layer's input energy, as in the last
// down_proj of SmolLM2, 31562x), act-order with static groups can be several
// times worse than the plain sweep: the first columns' large updates move the
// rest of their groups off grids fixed up front. Such a layer is solved both
// ways and the solve with the lower ||(W - Q) X||^2 is kept
// (LayerSolveResult::act_order_check says which); other layers are solved once,
// and so is a massive one where the solver backend cannot run the plain sweep
// (UNIMPLEMENTED: CUDA with lattice groups chosen during the sweep).
//
// Sparsity is preserved (preserve_zeros): weights that are exactly 0 on input
// are treated as pruned: they are set to 0 (code = zero point, which
// dequantizes to exactly 0) instead of being rounded, and their error
// w_current / U_pp is propagated like every other column's, as SparseGPT does
// for the weights it prunes while quantizing. So a GPTQ stage after a pruning
// stage keeps the mask and still compensates for it. Not on an asymmetric
// lattice grid (quant_grid.h FractionalZeros: 0 has no code there): its zero
// weights are quantized like any other (recipes refuse it after pruning).
//
// Layout: w row-major [out, in] (replaced by the dequantized result), h the
// full symmetric [in, in] H = 2 X X^T / n (hessian.h).
// Cost: O(in^3) for the factor, O(out * in^2) flops for the sweep (mostly
// sgemm), plus O(out * in^2) for the reported error; memory O(in^2 + out * in);
// twice that on a layer massive_fallback solves both ways.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/algorithms/obs_sweep.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/algorithms/solver_backend.h"

namespace compressd::engine {

struct GptqOptions {
  QuantGrid grid;
  bool act_order = false;
  bool static_groups = false;  // with act_order and group_size > 0
  bool massive_fallback = false;  // with act_order: see "Massive activations" above
  int64_t block_size = 128;
  double percdamp = 0.01;
  bool preserve_zeros = true;
  bool report_error = true;         // compute LayerSolveResult::relative_error
  int threads = 1;                  // for the in-block row loop (BLAS has its own)
  SolverBackend* solver = nullptr;  // where the factor and sweep run (null: the CPU)
};

// The ratio of inputs' energies from which massive_fallback compares: an input
// 10^4 times the median energy has 100 times the median RMS. On SmolLM2 the
// layers where act-order loses read inputs at 4.2e4 and 6.7e5 times the
// median; where it wins, at most 4.7e3 (docs/results.md, "Massive activations").
inline constexpr double kMassiveInputRatio = 1e4;

// max_j H_jj / median of the H_jj > 0 (0 when no input is live).
double MassiveInputRatio(const float* h, int64_t cols);

// Quantizes w in place (dequantized values) and returns the codes and grids
// (original input order) and the relative reconstruction error. Stateless;
// calls on distinct weights may run concurrently.
// INVALID_ARGUMENT naming `tensor` for bad options, non-finite weights or a
// Hessian that is not positive definite after damping.
absl::StatusOr<LayerSolveResult> Gptq(float* w, int64_t rows, int64_t cols, const float* h,
                                      const GptqOptions& options, absl::string_view tensor);

}  // namespace compressd::engine
