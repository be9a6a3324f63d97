// The layer solvers on a CUDA device (engine::SolverBackend): Hessian
// accumulation (cuBLAS ssyrk per chunk of at most 2048 tokens, summed in
// float64 on the device, as the CPU path), the damped inverse-Hessian
// Cholesky factor (cuSOLVER dpotrf + trtri in float64, the same reversal
// trick as hessian.h), the OBS column sweep of GPTQ/SparseGPT (per-column
// work in kernels, one thread per output row, the in-block update rounded
// exactly as the CPU's; the lazy update of the rest of the matrix one cuBLAS
// sgemm per block; masks chosen with the same (score, index) keys, sorted by
// CUB), and the reconstruction error. Host arrays in and out: the drivers
// (gptq.h, sparsegpt.h) are shared with the CPU.
//
// Memory: one arena per solver (device_buffer.h), grown to the largest layer
// seen (SolverBytes): for a [rows, cols] layer 16 cols^2 bytes (H, its
// float64 factorization, the float32 factor U) + 6 rows cols (W, mask,
// codes) + 32 rows block (the swept block, its errors, sort keys), e.g.
// 3.7 GB for Llama-3.1-8B's down_proj [4096, 14336]. The Hessian sum has its
// own buffers (16 dim^2 + 8 * 2048 dim bytes) while a group's H is built.
// Not thread-safe: one solve at a time (calls are serialized by the job).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "workers/engine/algorithms/solver_backend.h"

namespace compressd::cuda {

struct CudaSolverOptions {
  int device = 0;
};

// Device bytes a FactorAndSweep (and RelativeError) of a [rows, cols] layer
// with lazy-update blocks of `block` columns needs (host-side arithmetic,
// usable without a GPU).
uint64_t SolverBytes(int64_t rows, int64_t cols, int64_t block);

class CudaSolver final : public engine::SolverBackend {
 public:
  // FAILED_PRECONDITION when this build or machine has no CUDA device
  // `options.device`.
  static absl::StatusOr<std::unique_ptr<CudaSolver>> Create(const CudaSolverOptions& options);
  ~CudaSolver() override;

  std::string name() const override;
  std::unique_ptr<engine::HessianSum> NewHessian(int64_t dim, int threads) override;
  absl::Status FactorAndSweep(const float* h, const int64_t* perm, double percdamp,
                              absl::string_view tensor, const engine::SweepOptions& options,
                              engine::SweepState* state) override;
  absl::StatusOr<double> RelativeError(const float* w, const float* w_new, const float* h,
                                       int64_t rows, int64_t cols, int threads) override;
  // SolverBytes plus the Hessian sum's buffers (the arena stays while the
  // next group's H is summed); free device memory when created.
  uint64_t DeviceBytes(int64_t rows, int64_t cols, int64_t block) const override;
  uint64_t DeviceMemoryBytes() const override;

  struct Impl;

 private:
  explicit CudaSolver(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace compressd::cuda
