// SparseGPT driver: dead inputs, the inverse Hessian factor, then the shared
// OBS sweep with pruning (and optional quantization); see sparsegpt.h.
#include "workers/engine/algorithms/sparsegpt.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/algorithms/solver_backend.h"

namespace compressd::engine {

absl::StatusOr<LayerSolveResult> SparseGpt(float* w, int64_t rows, int64_t cols, const float* h,
                                           const SparseGptOptions& options,
                                           absl::string_view tensor) {
  RETURN_IF_ERROR(ValidateLayer(w, rows, cols, h, tensor));
  if (!(options.percdamp >= 0.0 && options.percdamp < 1e6)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": percdamp must be >= 0, got ", options.percdamp));
  }
  SweepOptions sweep;
  sweep.block_size = options.block_size;
  sweep.grid = options.grid;
  sweep.threads = options.threads;
  if (options.nm_n != 0 || options.nm_m != 0) {
    sweep.pruning.kind = SweepPruning::Kind::kNM;
    sweep.pruning.n = options.nm_n;
    sweep.pruning.m = options.nm_m;
  } else {
    sweep.pruning.kind = options.mask_scope == MaskScope::kBlock ? SweepPruning::Kind::kBlock
                                                                 : SweepPruning::Kind::kRow;
    sweep.pruning.sparsity = options.sparsity;
  }
  RETURN_IF_ERROR(ValidateSweep(sweep, cols, tensor));

  std::vector<float> original;
  if (options.report_error) original.assign(w, w + rows * cols);
  LayerSolveResult result;
  ZeroDeadInputs(w, rows, cols, h, &result.dead_inputs);
  SolverBackend& solver = options.solver != nullptr ? *options.solver : DefaultCpuSolver();
  SweepState state;
  state.w = w;
  state.rows = rows;
  state.cols = cols;
  RETURN_IF_ERROR(solver.FactorAndSweep(h, nullptr, options.percdamp, tensor, sweep, &state));

  if (options.grid) {
    QuantizedTensor q;
    q.rows = rows;
    q.cols = cols;
    q.grid = *options.grid;
    q.groups = GroupCount(*options.grid, cols);
    q.codes = std::move(state.codes);
    q.scales = std::move(state.scales);
    q.zeros = std::move(state.zeros);
    q.group_index = std::move(state.group_of);
    result.quantized = std::move(q);
  }
  result.pruned = std::move(state.pruned);
  if (options.report_error) {
    ASSIGN_OR_RETURN(result.relative_error,
                     solver.RelativeError(original.data(), w, h, rows, cols, options.threads));
  }
  return result;
}

}  // namespace compressd::engine
