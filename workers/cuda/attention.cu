// Causal grouped-query attention on the GPU, blockwise with an online softmax
// (FlashAttention, Dao et al. 2022), with AttentionRef's semantics: query row
// i of head h attends to the keys j of kv head h / (n_heads / n_kv_heads) with
// begin(i) <= j <= i, begin(i) the first row of i's packed sequence, scores
// scaled by 1/sqrt(head_dim).
//
// Layout: q, out [T, n_heads * hd]; k, v [T, n_kv_heads * hd], row-major.
// A block is 8 warps, one query row each (a query tile of 8 consecutive rows)
// for one head; grid = blocks_per_head x n_heads, each block striding over the
// query tiles (T is read from seq_start on the device). For each tile of 32
// keys (one lane per key) from the first row's sequence start to the tile's
// last row, the block stages K and V in shared memory; each warp then
//   s_j = q . k_j * scale          (lane j, masked to begin(i) <= j <= i)
//   m' = max(m, max_j s_j); e_j = exp(s_j - m'); l = l e^(m-m') + sum_j e_j
//   o = o e^(m-m') + sum_j e_j v_j (lane d holds o[d], o[d + 32], ...)
// and writes o / l at the end. Everything is float32.
//
// Shared memory: K [32, hd + 1] (odd row stride: no bank conflicts when lane j
// reads row j), V [32, hd], q [8, hd]: 72 KiB at hd = 256, 36 KiB at 128.
// Cost: 2 * hd flops per (query, key) pair of the causal triangle, for each
// head; K/V tiles are read from memory once per 8 query rows.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "workers/cuda/cuda_status.h"
#include "workers/cuda/kernels.h"

namespace compressd::cuda {
namespace {

constexpr int kRowsPerBlock = 8;                    // one warp per query row
constexpr int kKeysPerTile = 32;                    // one lane per key
constexpr int kChunks = kMaxAttentionHeadDim / 32;  // output elements per lane

struct Params {
  AttentionArgs a;
  int group;          // query heads per kv head
  int k_stride;       // row stride of the K tile in shared memory (odd)
  int64_t q_stride;   // n_heads * hd
  int64_t kv_stride;  // n_kv_heads * hd
  float scale;
};

int KStride(int head_dim) { return head_dim % 2 == 0 ? head_dim + 1 : head_dim; }

__device__ __forceinline__ int64_t Min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t Max64(int64_t a, int64_t b) { return a > b ? a : b; }

// The first row of the sequence holding row i: seq_start[s] for the last s
// with seq_start[s] <= i (empty sequences share their start with the next).
__device__ int64_t SeqBegin(const int64_t* seq_start, int64_t n_seqs, int64_t i) {
  int64_t lo = 0, hi = n_seqs - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (seq_start[mid] <= i) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return seq_start[lo];
}

// Stages keys [j0, j0 + 32) of kv head g (zeros past `last`) in ks and vs.
__device__ void LoadKvTile(const Params& p, int g, int64_t j0, int64_t last, float* ks, float* vs) {
  const int hd = p.a.head_dim;
  for (int idx = threadIdx.x; idx < kKeysPerTile * hd; idx += blockDim.x) {
    const int jj = idx / hd, d = idx % hd;
    const int64_t j = j0 + jj;
    float kv = 0.0f, vv = 0.0f;
    if (j <= last) {
      const int64_t off = j * p.kv_stride + int64_t{g} * hd + d;
      kv = p.a.k[off];
      vv = p.a.v[off];
    }
    ks[jj * p.k_stride + d] = kv;
    vs[jj * hd + d] = vv;
  }
}

// One warp, one query row i (keys begin..i), one staged key tile starting at
// j0: the online-softmax update of (m, l, o). Called by all 32 lanes.
__device__ __forceinline__ void AttendTile(const Params& p, const float* qw, const float* ks,
                                           const float* vs, int64_t j0, int64_t begin, int64_t i,
                                           float& m, float& l, float (&o)[kChunks]) {
  const int lane = threadIdx.x % 32, hd = p.a.head_dim;
  const int64_t j = j0 + lane;
  const bool valid = j >= begin && j <= i;
  float s = -INFINITY;
  if (valid) {
    const float* kj = ks + lane * p.k_stride;
    float dot = 0.0f;
    for (int d = 0; d < hd; ++d) dot = fmaf(qw[d], kj[d], dot);
    s = dot * p.scale;
  }
  const float tile_max = WarpReduce(s, MaxOp());
  if (tile_max == -INFINITY) return;  // no key of row i in this tile (same on every lane)
  const float m_new = fmaxf(m, tile_max);
  const float correction = expf(m - m_new);  // 0 on the row's first tile (m = -inf)
  const float e = valid ? expf(s - m_new) : 0.0f;
  l = l * correction + WarpReduce(e, SumOp());
#pragma unroll
  for (int c = 0; c < kChunks; ++c) o[c] *= correction;
  // The valid lanes are the contiguous range [lo, hi].
  const int lo = static_cast<int>(Max64(j0, begin) - j0);
  const int hi = static_cast<int>(Min64(j0 + kKeysPerTile - 1, i) - j0);
  for (int jj = lo; jj <= hi; ++jj) {
    const float ej = __shfl_sync(kFullMask, e, jj);
    const float* vj = vs + jj * hd;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int d = lane + 32 * c;
      if (d < hd) o[c] = fmaf(ej, vj[d], o[c]);
    }
  }
  m = m_new;
}

__global__ void __launch_bounds__(kRowsPerBlock * 32) AttentionKernel(Params p) {
  extern __shared__ float smem[];
  const int hd = p.a.head_dim;
  float* ks = smem;                            // [32, k_stride]
  float* vs = ks + kKeysPerTile * p.k_stride;  // [32, hd]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* qw = vs + kKeysPerTile * hd + warp * hd;  // this warp's query row [hd]
  const int h = blockIdx.y, g = h / p.group;
  const int64_t first = p.a.seq_start[0], end = p.a.seq_start[p.a.n_seqs];
  // Every bound below is the same for the whole block (or the whole warp).
  for (int64_t r0 = first + int64_t{blockIdx.x} * kRowsPerBlock; r0 < end;
       r0 += int64_t{gridDim.x} * kRowsPerBlock) {
    const int64_t last = Min64(r0 + kRowsPerBlock, end) - 1;
    const int64_t i = r0 + warp;
    const bool active = i <= last;
    const int64_t key_begin = SeqBegin(p.a.seq_start, p.a.n_seqs, r0);
    const int64_t begin = active ? SeqBegin(p.a.seq_start, p.a.n_seqs, i) : 0;
    __syncwarp();
    for (int d = lane; d < hd; d += 32) {
      qw[d] = active ? p.a.q[i * p.q_stride + int64_t{h} * hd + d] : 0.0f;
    }
    __syncwarp();
    float m = -INFINITY, l = 0.0f;
    float o[kChunks];
#pragma unroll
    for (int c = 0; c < kChunks; ++c) o[c] = 0.0f;
    for (int64_t j0 = key_begin; j0 <= last; j0 += kKeysPerTile) {
      __syncthreads();  // the previous tile is no longer read
      LoadKvTile(p, g, j0, last, ks, vs);
      __syncthreads();
      if (active) AttendTile(p, qw, ks, vs, j0, begin, i, m, l, o);
    }
    if (active) {
      float* oi = p.a.out + i * p.q_stride + int64_t{h} * hd;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int d = lane + 32 * c;
        if (d < hd) oi[d] = o[c] / l;  // l >= 1: the best key adds exp(0)
      }
    }
  }
}

}  // namespace

size_t AttentionSharedBytes(int head_dim) {
  return sizeof(float) * (size_t{kKeysPerTile} * KStride(head_dim) +
                          size_t{kKeysPerTile} * head_dim + size_t{kRowsPerBlock} * head_dim);
}

absl::Status LaunchAttention(const AttentionArgs& args, int blocks_per_head, cudaStream_t stream) {
  Params p;
  p.a = args;
  p.group = args.n_heads / args.n_kv_heads;
  p.k_stride = KStride(args.head_dim);
  p.q_stride = int64_t{args.n_heads} * args.head_dim;
  p.kv_stride = int64_t{args.n_kv_heads} * args.head_dim;
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(args.head_dim)));
  const size_t smem = AttentionSharedBytes(args.head_dim);
  CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
      AttentionKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>(blocks_per_head), static_cast<unsigned>(args.n_heads));
  AttentionKernel<<<grid, kRowsPerBlock * 32, smem, stream>>>(p);
  CUDA_RETURN_IF_LAUNCH_FAILED();
  return absl::OkStatus();
}

}  // namespace compressd::cuda
