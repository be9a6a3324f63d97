// Where the heavy numerics of a calibrated layer solve run: the Hessian
// accumulation (hessian.h), the damped inverse-Hessian Cholesky factor and
// the OBS column sweep (obs_sweep.h), and the reconstruction error. The
// drivers (gptq.h, sparsegpt.h) and the calibration pipeline do everything
// else (validation, dead inputs, act-order, static grids, collecting codes)
// on the host and call these through this interface, so a device backend
// (workers/cuda/cuda_solver.h) computes the same solve as the CPU one from
// the same inputs, with host arrays in and out.
//
// CpuSolver is the reference every other implementation is tested against
// (tests/cuda/). Implementations say whether they are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/algorithms/obs_sweep.h"

namespace compressd::engine {

// H = 2 X X^T / n streamed from host batches (as HessianAccumulator).
class HessianSum {
 public:
  virtual ~HessianSum() = default;
  // x: [tokens, dim] row-major, host. INVALID_ARGUMENT for a non-finite input.
  virtual absl::Status Add(const float* x, int64_t tokens) = 0;
  // Full symmetric [dim, dim] float32 on the host; FAILED_PRECONDITION before any token.
  virtual absl::StatusOr<std::vector<float>> Hessian() = 0;
};

class SolverBackend {
 public:
  virtual ~SolverBackend() = default;
  virtual std::string name() const = 0;
  // `threads`: host threads the sum may use (the CPU's panels); a device
  // implementation may ignore it.
  virtual std::unique_ptr<HessianSum> NewHessian(int64_t dim, int threads) = 0;
  // InverseHessianUpper(h, state->cols, perm, percdamp, tensor), then
  // ObsSweep(options, state) on that factor (state->u is not read). Same
  // errors as InverseHessianUpper.
  virtual absl::Status FactorAndSweep(const float* h, const int64_t* perm, double percdamp,
                                      absl::string_view tensor, const SweepOptions& options,
                                      SweepState* state) = 0;
  // RelativeReconstructionError(w, w_new, h, rows, cols, threads); a device
  // implementation may ignore `threads`.
  virtual absl::StatusOr<double> RelativeError(const float* w, const float* w_new, const float* h,
                                               int64_t rows, int64_t cols, int threads) = 0;
  // The device memory one [rows, cols] layer's Hessian and solve (lazy
  // blocks of `block` columns) take, and what the device had free when the
  // solver was made: both 0 for the host (its memory is in the job's host
  // estimate, pipeline/memory_estimate.h).
  virtual uint64_t DeviceBytes(int64_t rows, int64_t cols, int64_t block) const {
    (void)rows, (void)cols, (void)block;
    return 0;
  }
  virtual uint64_t DeviceMemoryBytes() const { return 0; }
};

// The host implementation: HessianAccumulator, InverseHessianUpper +
// ObsSweep (OpenBLAS/LAPACK), RelativeReconstructionError. Stateless and
// thread-safe.
class CpuSolver final : public SolverBackend {
 public:
  std::string name() const override { return "cpu"; }
  std::unique_ptr<HessianSum> NewHessian(int64_t dim, int threads) override;
  absl::Status FactorAndSweep(const float* h, const int64_t* perm, double percdamp,
                              absl::string_view tensor, const SweepOptions& options,
                              SweepState* state) override;
  absl::StatusOr<double> RelativeError(const float* w, const float* w_new, const float* h,
                                       int64_t rows, int64_t cols, int threads) override;
};

// A process-wide CpuSolver (it holds no state): what a null solver means.
SolverBackend& DefaultCpuSolver();

}  // namespace compressd::engine
