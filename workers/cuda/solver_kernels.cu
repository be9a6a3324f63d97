// Kernels of the CUDA layer solver (cuda_solver.h): the in-block OBS sweep,
// mask keys, the factor's reversal and rounding, the Hessian fold, and the
// error-trace helpers. The sweep reproduces obs_sweep.cc's arithmetic
// operation by operation (built with --fmad=false, and the products and
// differences written with round-to-nearest intrinsics), so given the same
// factor and weights a row's decisions are the CPU's; what differs is the
// order of the float sums inside cuBLAS and cuSOLVER.
//
// Layout: as obs_sweep.h (row-major W [rows, cols], U [cols, cols]); the
// block being swept is held transposed ([count, rows]) so that the threads
// of a warp (consecutive rows) touch consecutive addresses.
// Cost of the sweep kernel: rows * count^2 / 2 multiply-subtracts per block.
#include <cmath>
#include <cstdint>

#include "workers/cuda/solver_kernels.h"

namespace compressd::cuda {
namespace {

constexpr int kThreads = 256;

inline unsigned Blocks(int64_t n, int threads = kThreads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

__device__ inline uint64_t OrderKey(float score, uint32_t index) {
  const uint32_t bits = __float_as_uint(score) & 0x7fffffffu;
  return (static_cast<uint64_t>(bits) << 32) | index;
}

__device__ inline float Saliency(float w, float d) {
  return __fdiv_rn(__fmul_rn(w, w), __fmul_rn(d, d));
}

struct Grid {
  float scale;
  float zero;
};

// quant_grid.cc FindGridParam over columns [p, p + span) of row r: columns
// inside the block from wt, later ones from w.
__device__ Grid FindGrid(const SweepBlockArgs& a, int64_t r, int64_t p, int64_t span) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t c = p; c < p + span; ++c) {
    const float x = c < a.i2 ? a.wt[(c - a.i1) * a.rows + r] : a.w[r * a.cols + c];
    const float v = a.pruned[r * a.cols + c] ? 0.0f : x;
    lo = v < lo ? v : lo;
    hi = hi < v ? v : hi;
  }
  if (a.symmetric) {
    hi = hi < -lo ? -lo : hi;
    lo = -hi;
  }
  if (lo == 0.0f && hi == 0.0f) {
    lo = -1.0f;
    hi = 1.0f;
  }
  const int maxq = (1 << a.bits) - 1;
  Grid g;
  g.scale = __fdiv_rn(__fsub_rn(hi, lo), static_cast<float>(maxq));
  g.zero = a.symmetric ? static_cast<float>((maxq + 1) / 2) : rintf(__fdiv_rn(-lo, g.scale));
  return g;
}

// Prunes the m - n lowest (saliency, index) keys of the run [p, p + m) of row r.
__device__ void SelectNM(const SweepBlockArgs& a, int64_t r, int64_t p) {
  for (int j = 0; j < a.nm_m; ++j) {
    const int64_t cj = p + j;
    const float dj = a.u[cj * a.cols + cj];
    const uint64_t kj = OrderKey(Saliency(a.wt[(cj - a.i1) * a.rows + r], dj), j);
    int below = 0;
    for (int i = 0; i < a.nm_m; ++i) {
      const int64_t ci = p + i;
      const float di = a.u[ci * a.cols + ci];
      below += OrderKey(Saliency(a.wt[(ci - a.i1) * a.rows + r], di), i) < kj;
    }
    if (below < a.nm_m - a.nm_n) a.pruned[r * a.cols + cj] = 1;
  }
}

__global__ void SweepBlockKernel(SweepBlockArgs a) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= a.rows) return;
  const int maxq = a.bits > 0 ? (1 << a.bits) - 1 : 0;
  for (int64_t p = a.i1; p < a.i2; ++p) {
    float* wp = a.wt + (p - a.i1) * a.rows + r;
    if (a.nm_m > 0 && p % a.nm_m == 0) SelectNM(a, r, p);
    const float wv = *wp;
    const float x = a.pruned[r * a.cols + p] ? 0.0f : wv;
    float q = x;
    if (a.bits > 0) {
      const int64_t k = r * a.groups + a.group_of[p];
      const int64_t g = a.group_size;
      if (!a.static_grids && (g > 0 ? p % g == 0 : p == 0)) {
        const int64_t span = g > 0 ? (g < a.cols - p ? g : a.cols - p) : a.cols;
        const Grid gp = FindGrid(a, r, p, span);
        a.scales[k] = gp.scale;
        a.zeros[k] = gp.zero;
      }
      const float scale = a.scales[k], zero = a.zeros[k];
      float code = __fadd_rn(rintf(__fdiv_rn(x, scale)), zero);
      code = fminf(fmaxf(code, 0.0f), static_cast<float>(maxq));
      a.codes[r * a.cols + p] = static_cast<uint8_t>(code);
      q = __fmul_rn(scale, __fsub_rn(code, zero));
    }
    const float e = __fdiv_rn(__fsub_rn(wv, q), a.u[p * a.cols + p]);
    const float* urow = a.u + p * a.cols;
    for (int64_t c = p + 1; c < a.i2; ++c) {
      float* y = a.wt + (c - a.i1) * a.rows + r;
      *y = __fsub_rn(*y, __fmul_rn(e, urow[c]));
    }
    a.et[(p - a.i1) * a.rows + r] = e;
    *wp = q;
  }
}

__global__ void TransposeInKernel(const float* src, int64_t ld, int64_t rows, int64_t count,
                                  float* dst) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * count) return;
  const int64_t c = i / rows, r = i % rows;
  dst[i] = src[r * ld + c];
}

__global__ void TransposeOutKernel(const float* src, int64_t rows, int64_t count, float* dst,
                                   int64_t ld) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * count) return;
  const int64_t c = i / rows, r = i % rows;
  dst[r * ld + c] = src[i];
}

__global__ void MaskKeysKernel(const float* wt, const float* u, int64_t rows, int64_t cols,
                               int64_t i1, int64_t count, uint64_t* keys) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * count) return;
  const int64_t r = i / count, c = i % count;
  const float d = u[(i1 + c) * cols + i1 + c];
  keys[i] = OrderKey(Saliency(wt[c * rows + r], d), static_cast<uint32_t>(r * count + c));
}

__global__ void MarkLowestKernel(const uint64_t* sorted, int64_t segments, int64_t seg_len,
                                 int64_t k, int64_t count, int64_t cols, int64_t i1,
                                 uint8_t* pruned) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= segments * k) return;
  const int64_t s = i / k, j = i % k;
  const uint32_t idx = static_cast<uint32_t>(sorted[s * seg_len + j] & 0xffffffffu);
  pruned[(idx / count) * cols + i1 + idx % count] = 1;
}

__global__ void SegmentOffsetsKernel(int64_t segments, int64_t seg_len, int64_t* offsets) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i <= segments) offsets[i] = i * seg_len;
}

__global__ void BuildReversedKernel(const float* h, const int64_t* perm, const float* diag,
                                    double damp, int64_t n, double* a) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= n * n) return;
  const int64_t i = k / n, j = k % n;
  const int64_t si = perm != nullptr ? perm[n - 1 - i] : n - 1 - i;
  const int64_t sj = perm != nullptr ? perm[n - 1 - j] : n - 1 - j;
  a[k] = i == j ? static_cast<double>(diag[si]) + damp : static_cast<double>(h[si * n + sj]);
}

__global__ void FinishFactorKernel(const double* a, int64_t n, float* u) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= n * n) return;
  u[k] = k % n < k / n ? 0.0f : static_cast<float>(a[n * n - 1 - k]);
}

__global__ void FoldHessianKernel(const float* tmp, int64_t n, double* sum, int* bad) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= n * n) return;
  const int64_t c = k / n, r = k % n;  // column-major: element (r, c)
  if (r > c) return;
  sum[k] += static_cast<double>(tmp[k]);
  if (r == c && !isfinite(tmp[k])) atomicMin(bad, static_cast<int>(c));
}

__global__ void HessianOutKernel(const double* sum, int64_t n, double scale, float* h) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= n * n) return;
  const int64_t i = k / n, j = k % n;
  const int64_t lo = i < j ? i : j, hi = i < j ? j : i;
  h[k] = static_cast<float>(sum[hi * n + lo] * scale);
}

__global__ void SubKernel(const float* a, const float* b, int64_t n, float* d) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) d[i] = __fsub_rn(a[i], b[i]);
}

__global__ void DotKernel(const float* x, const float* y, int64_t n, double* out) {
  __shared__ double part[kThreads];
  double s = 0.0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    s += static_cast<double>(x[i]) * static_cast<double>(y[i]);
  }
  part[threadIdx.x] = s;
  __syncthreads();
  for (int step = kThreads / 2; step > 0; step /= 2) {
    if (static_cast<int>(threadIdx.x) < step) part[threadIdx.x] += part[threadIdx.x + step];
    __syncthreads();
  }
  if (threadIdx.x == 0) atomicAdd(out, part[0]);
}

}  // namespace

void LaunchSweepBlock(const SweepBlockArgs& a, cudaStream_t stream) {
  if (a.rows <= 0 || a.i2 <= a.i1) return;
  // Small blocks: one thread per row, so a 4096-row layer still spreads over
  // every multiprocessor (128 blocks).
  constexpr int kRowThreads = 32;
  SweepBlockKernel<<<Blocks(a.rows, kRowThreads), kRowThreads, 0, stream>>>(a);
}

void LaunchTransposeIn(const float* src, int64_t ld, int64_t rows, int64_t count, float* dst,
                       cudaStream_t stream) {
  if (rows * count <= 0) return;
  TransposeInKernel<<<Blocks(rows * count), kThreads, 0, stream>>>(src, ld, rows, count, dst);
}

void LaunchTransposeOut(const float* src, int64_t rows, int64_t count, float* dst, int64_t ld,
                        cudaStream_t stream) {
  if (rows * count <= 0) return;
  TransposeOutKernel<<<Blocks(rows * count), kThreads, 0, stream>>>(src, rows, count, dst, ld);
}

void LaunchMaskKeys(const float* wt, const float* u, int64_t rows, int64_t cols, int64_t i1,
                    int64_t count, uint64_t* keys, cudaStream_t stream) {
  if (rows * count <= 0) return;
  MaskKeysKernel<<<Blocks(rows * count), kThreads, 0, stream>>>(wt, u, rows, cols, i1, count,
                                                                keys);
}

void LaunchMarkLowest(const uint64_t* sorted, int64_t segments, int64_t seg_len, int64_t k,
                      int64_t count, int64_t cols, int64_t i1, uint8_t* pruned,
                      cudaStream_t stream) {
  if (k <= 0) return;
  MarkLowestKernel<<<Blocks(segments * k), kThreads, 0, stream>>>(sorted, segments, seg_len, k,
                                                                  count, cols, i1, pruned);
}

void LaunchSegmentOffsets(int64_t segments, int64_t seg_len, int64_t* offsets,
                          cudaStream_t stream) {
  SegmentOffsetsKernel<<<Blocks(segments + 1), kThreads, 0, stream>>>(segments, seg_len, offsets);
}

void LaunchBuildReversed(const float* h, const int64_t* perm, const float* diag, double damp,
                         int64_t n, double* a, cudaStream_t stream) {
  if (n <= 0) return;
  BuildReversedKernel<<<Blocks(n * n), kThreads, 0, stream>>>(h, perm, diag, damp, n, a);
}

void LaunchFinishFactor(const double* a, int64_t n, float* u, cudaStream_t stream) {
  if (n <= 0) return;
  FinishFactorKernel<<<Blocks(n * n), kThreads, 0, stream>>>(a, n, u);
}

void LaunchFoldHessian(const float* tmp, int64_t n, double* sum, int* bad, cudaStream_t stream) {
  if (n <= 0) return;
  FoldHessianKernel<<<Blocks(n * n), kThreads, 0, stream>>>(tmp, n, sum, bad);
}

void LaunchHessianOut(const double* sum, int64_t n, double scale, float* h, cudaStream_t stream) {
  if (n <= 0) return;
  HessianOutKernel<<<Blocks(n * n), kThreads, 0, stream>>>(sum, n, scale, h);
}

void LaunchSub(const float* a, const float* b, int64_t n, float* d, cudaStream_t stream) {
  if (n <= 0) return;
  SubKernel<<<Blocks(n), kThreads, 0, stream>>>(a, b, n, d);
}

void LaunchDot(const float* x, const float* y, int64_t n, double* out, cudaStream_t stream) {
  if (n <= 0) return;
  const unsigned blocks = Blocks(n) < 1024 ? Blocks(n) : 1024;
  DotKernel<<<blocks > 0 ? blocks : 1, kThreads, 0, stream>>>(x, y, n, out);
}

}  // namespace compressd::cuda
