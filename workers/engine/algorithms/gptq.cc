// GPTQ driver: dead inputs, act-order permutation, static grids, the inverse
// Hessian factor, then the shared OBS sweep; see gptq.h for the math.
#include "workers/engine/algorithms/gptq.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/algorithms/solver_backend.h"

namespace compressd::engine {
namespace {

// Grids of contiguous input groups computed on the (unpermuted) weights
// (on their lattice when the grid has scale_bits).
void StaticGrids(const float* w, int64_t rows, int64_t cols, const QuantGrid& grid,
                 SweepState* state) {
  const int64_t groups = GroupCount(grid, cols);
  state->scales.resize(rows * groups);
  state->zeros.resize(rows * groups);
  std::vector<GridParam> params(groups);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t c0 = g * grid.group_size;
      params[g] =
          FindGridParam(w + r * cols + c0, std::min(grid.group_size, cols - c0), nullptr, grid);
    }
    LatticeRow(grid, params.data(), groups);
    for (int64_t g = 0; g < groups; ++g) {
      state->scales[r * groups + g] = params[g].scale;
      state->zeros[r * groups + g] = params[g].zero;
    }
  }
}

// Copies W into sweep order (act-order) and sets up the masks and static grids.
void PrepareState(const float* w, int64_t rows, int64_t cols, const std::vector<int64_t>& perm,
                  const GptqOptions& options, bool static_grids, std::vector<float>* permuted,
                  SweepState* state) {
  state->rows = rows;
  state->cols = cols;
  if (!perm.empty()) {
    permuted->resize(rows * cols);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t p = 0; p < cols; ++p) (*permuted)[r * cols + p] = w[r * cols + perm[p]];
    }
    state->w = permuted->data();
  }
  if (options.preserve_zeros && !FractionalZeros(options.grid)) {  // else 0 has no code
    state->pruned.resize(rows * cols);
    for (int64_t i = 0; i < rows * cols; ++i) state->pruned[i] = state->w[i] == 0.0f;
  }
  if (static_grids) {
    StaticGrids(w, rows, cols, options.grid, state);
    state->group_of.resize(cols);
    for (int64_t p = 0; p < cols; ++p) {
      const int64_t col = perm.empty() ? p : perm[p];
      state->group_of[p] = static_cast<int32_t>(col / options.grid.group_size);
    }
  }
}

// Codes and grids in the original input order; with act-order also writes the
// swept weights back to w in that order.
QuantizedTensor Collect(const std::vector<int64_t>& perm, const QuantGrid& grid, SweepState* state,
                        float* w) {
  const int64_t rows = state->rows, cols = state->cols;
  QuantizedTensor q;
  q.rows = rows;
  q.cols = cols;
  q.grid = grid;
  q.groups = GroupCount(grid, cols);
  q.scales = std::move(state->scales);
  q.zeros = std::move(state->zeros);
  if (perm.empty()) {
    q.codes = std::move(state->codes);
    q.group_index = std::move(state->group_of);
    return q;
  }
  q.codes.resize(rows * cols);
  q.group_index.resize(cols);
  for (int64_t p = 0; p < cols; ++p) q.group_index[perm[p]] = state->group_of[p];
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t p = 0; p < cols; ++p) {
      w[r * cols + perm[p]] = state->w[r * cols + p];
      q.codes[r * cols + perm[p]] = state->codes[r * cols + p];
    }
  }
  return q;
}

// One GPTQ solve with the options as given (massive_fallback ignored).
absl::StatusOr<LayerSolveResult> GptqOnce(float* w, int64_t rows, int64_t cols, const float* h,
                                          const GptqOptions& options, absl::string_view tensor) {
  if (!(options.percdamp >= 0.0 && options.percdamp < 1e6)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": percdamp must be >= 0, got ", options.percdamp));
  }
  SweepOptions sweep;
  sweep.block_size = options.block_size;
  sweep.grid = options.grid;
  sweep.threads = options.threads;
  sweep.static_grids = options.static_groups && options.grid.group_size > 0;
  RETURN_IF_ERROR(ValidateSweep(sweep, cols, tensor));

  std::vector<float> original;
  if (options.report_error) original.assign(w, w + rows * cols);
  LayerSolveResult result;
  ZeroDeadInputs(w, rows, cols, h, &result.dead_inputs);
  std::vector<int64_t> perm;
  if (options.act_order) perm = ActOrderPermutation(h, cols);
  SolverBackend& solver = options.solver != nullptr ? *options.solver : DefaultCpuSolver();
  SweepState state;
  state.w = w;  // in place unless act-order permutes a copy
  std::vector<float> permuted;
  PrepareState(w, rows, cols, perm, options, sweep.static_grids, &permuted, &state);
  RETURN_IF_ERROR(solver.FactorAndSweep(h, perm.empty() ? nullptr : perm.data(), options.percdamp,
                                        tensor, sweep, &state));
  result.quantized = Collect(perm, options.grid, &state, w);
  if (options.report_error) {
    ASSIGN_OR_RETURN(result.relative_error,
                     solver.RelativeError(original.data(), w, h, rows, cols, options.threads));
  }
  return result;
}

}  // namespace

double MassiveInputRatio(const float* h, int64_t cols) {
  std::vector<float> live;
  live.reserve(cols);
  for (int64_t j = 0; j < cols; ++j) {
    if (h[j * cols + j] > 0.0f) live.push_back(h[j * cols + j]);
  }
  if (live.empty()) return 0.0;
  const float largest = *std::max_element(live.begin(), live.end());
  auto mid = live.begin() + static_cast<std::ptrdiff_t>(live.size() / 2);
  std::nth_element(live.begin(), mid, live.end());
  return static_cast<double>(largest) / static_cast<double>(*mid);
}

absl::StatusOr<LayerSolveResult> Gptq(float* w, int64_t rows, int64_t cols, const float* h,
                                      const GptqOptions& options, absl::string_view tensor) {
  RETURN_IF_ERROR(ValidateLayer(w, rows, cols, h, tensor));
  const double ratio =
      options.act_order && options.massive_fallback ? MassiveInputRatio(h, cols) : 0.0;
  if (ratio < kMassiveInputRatio) return GptqOnce(w, rows, cols, h, options, tensor);
  // Both solves, each with its error (the comparison needs them).
  std::vector<float> plain_w(w, w + rows * cols);
  GptqOptions act = options;
  act.report_error = true;
  GptqOptions plain = act;
  plain.act_order = false;
  plain.static_groups = false;
  // StatusOr held directly (GCC 12 misreads a moved-into optional member).
  absl::StatusOr<LayerSolveResult> with_order = GptqOnce(w, rows, cols, h, act, tensor);
  if (!with_order.ok()) return with_order.status();
  absl::StatusOr<LayerSolveResult> without = GptqOnce(plain_w.data(), rows, cols, h, plain, tensor);
  // A backend that cannot run the plain sweep on this grid (CUDA: lattice
  // groups chosen during the sweep) keeps the act-order solve, uncompared.
  if (absl::IsUnimplemented(without.status())) return with_order;
  if (!without.ok()) return without.status();
  const ActOrderCheck check{ratio, with_order->relative_error, without->relative_error,
                            with_order->relative_error <= without->relative_error};
  absl::StatusOr<LayerSolveResult>& kept = check.kept_act_order ? with_order : without;
  if (!check.kept_act_order) std::copy(plain_w.begin(), plain_w.end(), w);
  kept->act_order_check = check;
  return std::move(kept);
}

}  // namespace compressd::engine
