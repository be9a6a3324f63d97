// Launchers of the solver kernels (solver_kernels.cu), used by
// cuda_solver.cu. All asynchronous on `stream`; device pointers.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace compressd::cuda {

// The in-block OBS sweep of columns [i1, i2) for every row (one thread per
// row): wt holds the block transposed, [count][rows]; et receives the
// errors, [count][rows]. See obs_sweep.cc SweepRow for the arithmetic.
struct SweepBlockArgs {
  int64_t rows = 0, cols = 0, i1 = 0, i2 = 0;
  const float* u = nullptr;     // [cols, cols]
  const float* w = nullptr;     // [rows, cols] (columns >= i2 for grids spanning past the block)
  float* wt = nullptr;          // [count, rows]
  float* et = nullptr;          // [count, rows]
  uint8_t* pruned = nullptr;    // [rows, cols]
  uint8_t* codes = nullptr;     // [rows, cols] or null without a grid
  float* scales = nullptr;      // [rows, groups]
  float* zeros = nullptr;
  const int32_t* group_of = nullptr;  // [cols]
  int64_t groups = 0;
  int64_t group_size = 0;  // the grid's (-1: per channel)
  int bits = 0;            // 0: no grid
  bool symmetric = true;
  bool static_grids = false;
  int nm_n = 0, nm_m = 0;  // N:M pruning when nm_m > 0
};
void LaunchSweepBlock(const SweepBlockArgs& a, cudaStream_t stream);

// dst[c][r] = src[r * ld + c] for r < rows, c < count (and back).
void LaunchTransposeIn(const float* src, int64_t ld, int64_t rows, int64_t count, float* dst,
                       cudaStream_t stream);
void LaunchTransposeOut(const float* src, int64_t rows, int64_t count, float* dst, int64_t ld,
                        cudaStream_t stream);

// keys[r * count + c] = OrderKey(w^2 / u_cc^2, base(r) + c) for the block
// [i1, i1 + count) held transposed in wt; base(r) = r * count (both scopes).
void LaunchMaskKeys(const float* wt, const float* u, int64_t rows, int64_t cols, int64_t i1,
                    int64_t count, uint64_t* keys, cudaStream_t stream);
// Marks pruned[(idx / count) * cols + i1 + idx % count] for the first k
// sorted keys of each of `segments` segments of `seg_len` keys.
void LaunchMarkLowest(const uint64_t* sorted, int64_t segments, int64_t seg_len, int64_t k,
                      int64_t count, int64_t cols, int64_t i1, uint8_t* pruned,
                      cudaStream_t stream);
// offsets[i] = i * seg_len for i <= segments.
void LaunchSegmentOffsets(int64_t segments, int64_t seg_len, int64_t* offsets,
                          cudaStream_t stream);

// a[i][j] = (double) h[src(n-1-i)][src(n-1-j)], diagonal diag[src(n-1-i)] + damp
// (src = perm, or identity when perm is null).
void LaunchBuildReversed(const float* h, const int64_t* perm, const float* diag, double damp,
                         int64_t n, double* a, cudaStream_t stream);
// u[k] = k % n < k / n ? 0 : (float) a[n*n - 1 - k].
void LaunchFinishFactor(const double* a, int64_t n, float* u, cudaStream_t stream);

// sum[i] += tmp[i] over the column-major upper triangle; *bad = min column
// whose diagonal tmp entry is not finite (leave *bad = n when none).
void LaunchFoldHessian(const float* tmp, int64_t n, double* sum, int* bad, cudaStream_t stream);
// h[i][j] = (float)(sum(min, max) * scale), full symmetric.
void LaunchHessianOut(const double* sum, int64_t n, double scale, float* h, cudaStream_t stream);

// d = a - b (n entries); out = sum of x[i] * y[i] in float64 (one value).
void LaunchSub(const float* a, const float* b, int64_t n, float* d, cudaStream_t stream);
void LaunchDot(const float* x, const float* y, int64_t n, double* out, cudaStream_t stream);

}  // namespace compressd::cuda
