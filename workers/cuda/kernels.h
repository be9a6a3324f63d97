// Internal to the CUDA backend (cuda_backend.cu, attention.cu,
// softmax_stats.cu; nvcc only):
// the warp and block reductions its kernels share, and the launch functions of
// the kernels that live outside cuda_backend.cu. Arguments are validated by
// the caller (CudaBackend), pointers are device pointers, and launches are
// queued on `stream` without waiting.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"

namespace compressd::cuda {

inline constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float ShuffleXor(float v, int o) {
  return __shfl_xor_sync(kFullMask, v, o);
}
__device__ __forceinline__ double ShuffleXor(double v, int o) {
  return __shfl_xor_sync(kFullMask, v, o);
}

// The reduction of v over the warp, returned to every lane. Op is a functor;
// ShuffleXor(T, int) must exist (here, or beside T for ADL).
template <typename T, typename Op>
__device__ __forceinline__ T WarpReduce(T v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, ShuffleXor(v, o));
  return v;
}

// The reduction of v over the block, returned to every thread. blockDim.x is
// a multiple of 32; scratch is 33 T of shared memory; identity is op's.
template <typename T, typename Op>
__device__ T BlockReduce(T v, Op op, T identity, T* scratch) {
  v = WarpReduce(v, op);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = WarpReduce(lane < static_cast<int>(blockDim.x / 32) ? scratch[lane] : identity, op);
    if (lane == 0) scratch[32] = v;
  }
  __syncthreads();
  return scratch[32];
}

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};

inline constexpr int kMaxAttentionHeadDim = 256;

struct AttentionArgs {
  const float* q = nullptr;            // [T, n_heads * head_dim]
  const float* k = nullptr;            // [T, n_kv_heads * head_dim]
  const float* v = nullptr;            // [T, n_kv_heads * head_dim]
  const int64_t* seq_start = nullptr;  // [n_seqs + 1], on the device
  int64_t n_seqs = 0;                  // >= 1
  int n_heads = 0;                     // a multiple of n_kv_heads, <= 65535
  int n_kv_heads = 0;
  int head_dim = 0;      // in [1, kMaxAttentionHeadDim]
  float* out = nullptr;  // [T, n_heads * head_dim]
};

// Dynamic shared memory of one attention block for head_dim (above 48 KiB
// the launch opts in; the caller checks the device's opt-in limit).
size_t AttentionSharedBytes(int head_dim);

// Causal grouped-query attention within each packed sequence, as
// AttentionRef (ops_ref.h). The row count T = seq_start[n_seqs] stays on the
// device: the grid is blocks_per_head x n_heads blocks that stride over the
// query tiles, so no host synchronization is needed.
absl::Status LaunchAttention(const AttentionArgs& args, int blocks_per_head, cudaStream_t stream);

// SoftmaxStatsUpdate (cross null) / KlStatsUpdate on a [t, n] chunk of
// vocabulary ids [v0, v0 + n), as their references (ops_ref.h); t >= 1, n >= 1
// (softmax_stats.cu).
absl::Status LaunchSoftmaxStats(const float* p, const float* q, int64_t t, int64_t n, int64_t v0,
                                float* max, float* sum, int32_t* argmax, float* cross,
                                cudaStream_t stream);

}  // namespace compressd::cuda
