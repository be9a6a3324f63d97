// The layer Hessian of the OBS-family solvers (Optimal Brain Surgeon, Hassibi
// & Stork 1993, as used by GPTQ and SparseGPT, Frantar et al. 2022/2023):
// for a linear layer y = W x and the squared reconstruction error
// ||W X - W' X||^2 over n calibration tokens, H = 2 X X^T / n.
//
// Layout: calibration inputs X are row-major [tokens, in] (one token per row,
// as a forward pass produces them); H is a full symmetric row-major [in, in]
// float32 matrix; weights are row-major [out, in].
//
// Cost: Add is a rank-k update, O(k * in^2) (per panel of kPanelRows rows of
// the upper triangle: ssyrk on its diagonal block, sgemm right of it; the
// panels spread over `threads` threads), plus O(in^2) to fold it into the
// float64 running sum; InverseHessianUpper is in^3 / 3 float64
// multiply-adds for the Cholesky factorization plus in^3 / 3 for the
// triangular inverse (no H^-1, no second factorization);
// RelativeReconstructionError is two [out, in] x [in, in] products.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace compressd::engine {

// Streams calibration batches into H = 2 X X^T / n (n = tokens seen).
// Precision: each batch (cut into chunks of at most kChunkTokens tokens) is a
// float32 ssyrk, and the chunks are summed in float64, so the result does not
// drift with the number of batches and the 2 / n scaling is applied once, at
// the end. The panels are fixed by dim alone, so the result is bit-identical
// for every thread count. Memory: 8 dim^2 bytes, plus 4 dim^2 during Add.
// Not thread-safe (Add uses `threads` threads of its own).
class HessianAccumulator {
 public:
  static constexpr int64_t kChunkTokens = 2048;
  static constexpr int64_t kPanelRows = 128;

  explicit HessianAccumulator(int64_t dim, int threads = 1);

  // x: [tokens, dim] row-major. INVALID_ARGUMENT for tokens < 0 or an input
  // that is not finite (the message names the input column).
  absl::Status Add(const float* x, int64_t tokens);

  int64_t dim() const { return dim_; }
  int64_t tokens() const { return tokens_; }

  // H = 2 / n * sum_t x_t x_t^T, full symmetric [dim, dim] float32.
  // FAILED_PRECONDITION before any token was added.
  absl::StatusOr<std::vector<float>> Hessian() const;

 private:
  // Rows [r0, r1) of one chunk's upper triangle into scratch, checked and
  // folded into sum_; tokens_at names the chunk's first token in errors.
  absl::Status AddPanel(const float* x, int k, int64_t r0, int64_t r1, float* scratch,
                        int64_t tokens_at);

  int64_t dim_;
  int threads_;
  int64_t tokens_ = 0;
  std::vector<double> sum_;  // upper triangle (row-major) of sum_t x_t x_t^T
};

// Reference for HessianAccumulator: plain float64 loops over all tokens.
std::vector<float> HessianRef(const float* x, int64_t tokens, int64_t dim);

// sqrt(H_jj): proportional to the input norms ||X_j||_2 that Wanda uses
// (||X_j||^2 = n H_jj / 2).
std::vector<float> InputNormsFromHessian(const float* h, int64_t dim);

// H's diagonal with dead inputs (H_jj == 0) set to 1; INVALID_ARGUMENT
// naming `tensor` for a negative or non-finite entry.
absl::StatusOr<std::vector<float>> FixedHessianDiagonal(const float* h, int64_t dim,
                                                       absl::string_view tensor);
// percdamp * mean(diag): what InverseHessianUpper adds to the diagonal.
double HessianDamping(const std::vector<float>& diag, double percdamp);

// The upper Cholesky factor U of the damped inverse Hessian, H^-1 = U^T U,
// row-major [dim, dim] (zero below the diagonal). Before factoring: dead
// inputs (H_jj == 0) get H_jj = 1, then percdamp * mean(diag H) is added to
// the diagonal. With `perm` (size dim, may be null) it factors H[perm][:, perm].
// Computed without forming H^-1: with J the reversal permutation, factor
// J H J = L L^T (dpotrf) and invert L (dtrtri); then U = J L^-1 J, since
// U^T U = J L^-T L^-1 J = (J L L^T J)^-1 = H^-1. In float64, rounded to
// float32 at the end, in place: the float64 workspace (8 dim^2 bytes) becomes
// the float32 result (4 dim^2), so a solve's peak is the caller's H plus the
// workspace, never H + workspace + result. After 1% damping real layers
// still have condition numbers ~2e4 (SmolLM2 q_proj, gate_proj), where a
// float32 factorization puts ~1e-5 relative error into U (enough to flip
// rounding decisions).
// INVALID_ARGUMENT naming `tensor` when H has a negative or non-finite
// diagonal entry or is not positive definite after damping.
// A float32 matrix held in the buffer that was its own float64 workspace
// (malloc'd, shrunk to the float32 size when the factor is final).
class FactorMatrix {
 public:
  FactorMatrix() = default;
  FactorMatrix(float* p, size_t n) : p_(p), n_(n) {}
  float* data() { return p_.get(); }
  const float* data() const { return p_.get(); }
  size_t size() const { return n_; }
  float operator[](size_t i) const { return p_.get()[i]; }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float, Free> p_;
  size_t n_ = 0;
};

// `threads`: OpenBLAS threads for the factorization of a Hessian at least
// kThreadedFactorDim wide (blas_threads.h: the factor's bits then depend on
// the count; below it the factor runs on one thread, as before).
inline constexpr int64_t kThreadedFactorDim = 2048;
absl::StatusOr<FactorMatrix> InverseHessianUpper(const float* h, int64_t dim, const int64_t* perm,
                                                 double percdamp, absl::string_view tensor,
                                                 int threads = 1);
// Reference: the same damping, then H^-1 and its Cholesky factor in float64 (Eigen).
std::vector<float> InverseHessianUpperRef(const float* h, int64_t dim, double percdamp);

// Relative reconstruction error of W' on the calibration inputs,
// ||W X - W' X||^2 / ||W X||^2 = tr((W - W') H (W - W')^T) / tr(W H W^T):
// computable from H alone, since the 2 / n scale cancels. 0 when W H W^T has
// zero trace. w, w_new: [rows, cols]; h: [cols, cols] (the undamped H).
// `threads`: the two products' rows split over threads (ParallelGemmRows).
double RelativeReconstructionError(const float* w, const float* w_new, const float* h, int64_t rows,
                                   int64_t cols, int threads = 1);
// Reference: float64 loops.
double RelativeReconstructionErrorRef(const float* w, const float* w_new, const float* h,
                                      int64_t rows, int64_t cols);

}  // namespace compressd::engine
