// The CPU SolverBackend: the host solvers behind the interface.
#include "workers/engine/algorithms/solver_backend.h"

#include "common/status_macros.h"

namespace compressd::engine {
namespace {

class CpuHessianSum final : public HessianSum {
 public:
  CpuHessianSum(int64_t dim, int threads) : acc_(dim, threads) {}
  absl::Status Add(const float* x, int64_t tokens) override { return acc_.Add(x, tokens); }
  absl::StatusOr<std::vector<float>> Hessian() override { return acc_.Hessian(); }

 private:
  HessianAccumulator acc_;
};

}  // namespace

std::unique_ptr<HessianSum> CpuSolver::NewHessian(int64_t dim, int threads) {
  return std::make_unique<CpuHessianSum>(dim, threads);
}

absl::Status CpuSolver::FactorAndSweep(const float* h, const int64_t* perm, double percdamp,
                                       absl::string_view tensor, const SweepOptions& options,
                                       SweepState* state) {
  ASSIGN_OR_RETURN(FactorMatrix u,
                   InverseHessianUpper(h, state->cols, perm, percdamp, tensor, options.threads));
  state->u = u.data();
  ObsSweep(options, state);
  state->u = nullptr;
  return absl::OkStatus();
}

absl::StatusOr<double> CpuSolver::RelativeError(const float* w, const float* w_new, const float* h,
                                                int64_t rows, int64_t cols, int threads) {
  return RelativeReconstructionError(w, w_new, h, rows, cols, threads);
}

SolverBackend& DefaultCpuSolver() {
  static CpuSolver* const solver = new CpuSolver();
  return *solver;
}

}  // namespace compressd::engine
