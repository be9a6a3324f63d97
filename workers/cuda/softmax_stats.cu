// The streaming softmax statistics of the CUDA backend (SoftmaxStatsUpdate,
// KlStatsUpdate; see cuda_backend.cu): one block per row of a [t, n]
// vocabulary chunk, a block argmax (first index of the maximum), then sums
// of exp(p - max) (and of exp(p - max) (p - q)) in double, folded into the
// running values.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "workers/cuda/cuda_status.h"
#include "workers/cuda/kernels.h"

namespace compressd::cuda {
namespace {

constexpr int kThreads = 256;  // a multiple of 32

// The first maximum: the larger value, of equal values the smaller index.
struct ArgMax {
  float value;
  int64_t index;
};
struct ArgMaxOp {
  __device__ ArgMax operator()(ArgMax a, ArgMax b) const {
    return (b.value > a.value || (b.value == a.value && b.index < a.index)) ? b : a;
  }
};
__device__ __forceinline__ ArgMax ShuffleXor(ArgMax v, int o) {
  return {__shfl_xor_sync(kFullMask, v.value, o), __shfl_xor_sync(kFullMask, v.index, o)};
}

__global__ void StatsKernel(const float* p, const float* q, int64_t n, int64_t v0, float* max,
                            float* sum, int32_t* argmax, float* cross) {
  __shared__ ArgMax arg_scratch[33];
  __shared__ double sum_scratch[33];
  const int64_t r = blockIdx.x;
  const float* pr = p + r * n;
  ArgMax best{-INFINITY, INT64_MAX};
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    if (pr[i] > best.value) best = {pr[i], i};  // a thread's indices increase: first maximum
  }
  best = BlockReduce(best, ArgMaxOp(), ArgMax{-INFINITY, INT64_MAX}, arg_scratch);
  const float old_max = max[r];
  const bool new_max = best.value > old_max;  // a tie keeps the earlier chunk's argmax
  const float m = new_max ? best.value : old_max;
  double s = 0.0, c = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const double e = exp(double{pr[i]} - m);
    s += e;
    if (cross != nullptr) c += e * (double{pr[i]} - q[r * n + i]);
  }
  s = BlockReduce(s, SumOp(), 0.0, sum_scratch);
  if (cross != nullptr) c = BlockReduce(c, SumOp(), 0.0, sum_scratch);
  if (threadIdx.x == 0) {
    const double rescale = new_max ? exp(double{old_max} - m) : 1.0;
    if (new_max) argmax[r] = static_cast<int32_t>(v0 + best.index);
    max[r] = m;
    sum[r] = static_cast<float>(sum[r] * rescale + s);
    if (cross != nullptr) cross[r] = static_cast<float>(cross[r] * rescale + c);
  }
}

}  // namespace

absl::Status LaunchSoftmaxStats(const float* p, const float* q, int64_t t, int64_t n, int64_t v0,
                                float* max, float* sum, int32_t* argmax, float* cross,
                                cudaStream_t stream) {
  StatsKernel<<<static_cast<unsigned>(t), kThreads, 0, stream>>>(p, q, n, v0, max, sum, argmax,
                                                                 cross);
  CUDA_RETURN_IF_LAUNCH_FAILED();
  return absl::OkStatus();
}

}  // namespace compressd::cuda
