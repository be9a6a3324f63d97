// CudaBackend (cuda_backend.h): the forward-pass ops on one GPU, with the
// semantics of their references in ops_ref.h. Attention is in attention.cu.
//
//   Linear      y[T, out] = x[T, in] w[out, in]^T (+ bias): one cuBLAS GEMM in
//               column-major terms, y^T[out, T] = (w^T)^T x^T (FP32 or TF32
//               sgemm; BF16 copies of x and w into the backend's scratch and
//               cublasGemmEx with FP32 accumulation), then a bias kernel.
//   RmsNorm     one block per row; sum of squares and the scaling in double.
//   Rope        one thread per rotated pair (row, head, i < half), in double,
//               cos/sin from the RopeTable uploaded once and cached.
//   SoftmaxStatsUpdate / KlStatsUpdate: softmax_stats.cu.
//   SiluMul, Add, Embed: grid-stride elementwise loops (Embed: a block per row).
//   GeluTanhMul, Softcap, soft-capped or rescaled attention, partial rotary
//   (Gemma, Phi-4-mini): UNIMPLEMENTED, run on the CPU.
// All rows are row-major float32. Every op is memory bound except Linear
// (2 T in out flops) and Attention; each is one or two kernel launches
// queued on the backend's stream.
#include "workers/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/cuda/cuda_status.h"
#include "workers/cuda/device_buffer.h"
#include "workers/cuda/kernels.h"
#include "workers/engine/model/fp8.h"

namespace compressd::cuda {
namespace {

constexpr int kThreads = 256;  // every kernel of this file; a multiple of 32

// Blocks for a grid-stride loop over n elements.
unsigned Blocks(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65536));
}

__device__ __forceinline__ int64_t GridStart() {
  return int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t GridStride() { return int64_t{gridDim.x} * blockDim.x; }

// ---- Kernels.

__global__ void AddBiasKernel(float* y, const float* bias, int64_t t, int64_t out) {
  for (int64_t i = GridStart(); i < t * out; i += GridStride()) y[i] += bias[i % out];
}

__global__ void ToBf16Kernel(const float* x, int64_t n, __nv_bfloat16* y) {
  for (int64_t i = GridStart(); i < n; i += GridStride()) y[i] = __float2bfloat16_rn(x[i]);
}

// One block per row.
__global__ void RmsNormKernel(const float* x, const float* weight, int64_t dim, float eps,
                              float* y) {
  __shared__ double scratch[33];
  const float* xr = x + int64_t{blockIdx.x} * dim;
  float* yr = y + int64_t{blockIdx.x} * dim;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += double{xr[i]} * xr[i];
  ss = BlockReduce(ss, SumOp(), 0.0, scratch);
  const double inv = 1.0 / sqrt(ss / static_cast<double>(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    yr[i] = static_cast<float>(xr[i] * inv * weight[i]);
  }
}

__global__ void RopeKernel(float* x, int64_t t, int n_heads, int half, const int32_t* positions,
                           const float* cos_table, const float* sin_table, int64_t n_positions) {
  const int64_t n = t * n_heads * half;
  for (int64_t idx = GridStart(); idx < n; idx += GridStride()) {
    const int i = static_cast<int>(idx % half);
    const int64_t row_head = idx / half;  // r * n_heads + h
    const int64_t pos = positions[row_head / n_heads];
    if (pos < 0 || pos >= n_positions) continue;  // trusted input; never read outside the table
    float* v = x + row_head * 2 * half;
    const double c = cos_table[pos * half + i], s = sin_table[pos * half + i];
    const double a = v[i], b = v[i + half];
    v[i] = static_cast<float>(a * c - b * s);
    v[i + half] = static_cast<float>(b * c + a * s);
  }
}

// One block per row: the row's max |x|, then every element on the int8 (or
// E4M3: the host's own model/fp8.h arithmetic) grid.
__global__ void QuantizeActivationsKernel(const float* x, int64_t dim, bool fp8, float* out) {
  __shared__ float scratch[33];
  const float* xr = x + int64_t{blockIdx.x} * dim;
  float* yr = out + int64_t{blockIdx.x} * dim;
  float m = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) m = fmaxf(m, fabsf(xr[i]));
  m = BlockReduce(m, MaxOp(), 0.0f, scratch);
  if (fp8) {
    const float s = fmaxf(__fdiv_rn(m, engine::kFp8E4m3Max), engine::kFp8MinTokenScale);
    const float inv = __fdiv_rn(1.0f, s);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
      yr[i] = m == 0.0f ? 0.0f : __fmul_rn(engine::Fp8E4m3Round(__fmul_rn(xr[i], inv)), s);
    }
    return;
  }
  const float qmax = 127.0f;
  const float inv = __fdiv_rn(qmax, m), scale = __fdiv_rn(m, qmax);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    yr[i] = m == 0.0f ? 0.0f : __fmul_rn(fminf(fmaxf(rintf(__fmul_rn(xr[i], inv)), -qmax - 1.0f), qmax), scale);
  }
}

__global__ void SiluMulKernel(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = GridStart(); i < n; i += GridStride()) {
    const float g = gate[i];  // out may alias gate: read before the write
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void AddKernel(float* x, const float* y, int64_t n) {
  for (int64_t i = GridStart(); i < n; i += GridStride()) x[i] += y[i];
}

// One block per row.
__global__ void EmbedKernel(const float* table, int64_t dim, const int32_t* ids, float* out) {
  const float* src = table + int64_t{ids[blockIdx.x]} * dim;
  float* dst = out + int64_t{blockIdx.x} * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = src[i];
}

// One block per row r of the chunk; q and cross are null for SoftmaxStats.

size_t Aligned(size_t bytes) {
  return (bytes + DeviceArena::kAlign - 1) / DeviceArena::kAlign * DeviceArena::kAlign;
}

absl::Status ShapeError(const char* what, int64_t value) {
  return absl::InvalidArgumentError(absl::StrCat(what, " = ", value, " is out of range"));
}

// An op some families need that this backend does not have (docs/families.md).
absl::Status CpuOnly(absl::string_view what) {
  return absl::UnimplementedError(
      absl::StrCat(what, ": not implemented on CUDA; run the job on a CPU worker"));
}

}  // namespace

// ---- The backend's state and the ops' host side.

struct CudaBackend::Impl {
  explicit Impl(const CudaBackendOptions& o) : options(o) {}
  ~Impl();

  absl::Status Init();
  // Runs op f unless an earlier op failed; keeps f's error.
  template <typename F>
  void Run(const char* op, F&& f);
  // Keeps s, naming the op, unless an earlier error is kept.
  void Fail(const char* op, const absl::Status& s);
  // Grows `arena` to `bytes`, waiting first for the work that may read it.
  absl::Status Ensure(DeviceArena& arena, size_t bytes);
  absl::Status UploadRope(const engine::RopeTable& table);
  absl::Status GemmBf16(const float* x, int t, int in, const float* w, int out, float* y);
  absl::Status Linear(const float* x, int64_t t, int64_t in, const float* w, const float* bias,
                      int64_t out, float* y);
  absl::Status Rope(float* x, int64_t t, int n_heads, int head_dim, const int32_t* positions,
                    const engine::RopeTable& table);
  absl::Status Attention(const float* q, const float* k, const float* v, const int64_t* seq_start,
                         int64_t n_seqs, const engine::AttentionShape& shape, float* out);
  absl::Status Stats(const float* p, const float* q, int64_t t, int64_t n, int64_t v0, float* max,
                     float* sum, int32_t* argmax, float* cross);

  const CudaBackendOptions options;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  int sm_count = 1;
  int max_shared_optin = 48 * 1024;
  DeviceArena bf16_scratch;  // BF16 copies of a GEMM's x and w (kBf16)
  DeviceArena rope_arena;    // the cached RoPE table: cos, then sin
  // The cached table: its address, data, n_positions and half.
  using RopeKey = std::tuple<const void*, const float*, const float*, int64_t, int>;
  RopeKey rope_key;
  const float* rope_cos = nullptr;  // null: nothing cached
  const float* rope_sin = nullptr;
  std::vector<float> rope_host_cos, rope_host_sin;  // what the cached table holds
  absl::Status status;
};

CudaBackend::Impl::~Impl() {
  if (stream == nullptr && blas == nullptr) return;
  // Errors are ignored: there is no one left to report them to.
  cudaSetDevice(options.device);
  if (stream != nullptr) cudaStreamSynchronize(stream);
  if (blas != nullptr) cublasDestroy(blas);
  if (stream != nullptr) cudaStreamDestroy(stream);
  // The arenas free their memory after this, with this device current.
}

absl::Status CudaBackend::Impl::Init() {
  const int dev = options.device;
  CUDA_RETURN_IF_ERROR(cudaSetDevice(dev));
  CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, dev));
  CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&max_shared_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  CUBLAS_RETURN_IF_ERROR(cublasCreate(&blas));
  CUBLAS_RETURN_IF_ERROR(cublasSetStream(blas, stream));
  // DEFAULT_MATH keeps FP32 GEMMs in FP32 (TF32 only when asked for).
  CUBLAS_RETURN_IF_ERROR(cublasSetMathMode(
      blas, options.gemm == GemmMode::kTf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return absl::OkStatus();
}

template <typename F>
void CudaBackend::Impl::Run(const char* op, F&& f) {
  if (!status.ok()) return;
  const absl::Status device = CudaError(cudaSetDevice(options.device), "cudaSetDevice");
  Fail(op, device.ok() ? f() : device);
}

void CudaBackend::Impl::Fail(const char* op, const absl::Status& s) {
  if (s.ok()) return;
  status.Update(absl::Status(s.code(), absl::StrCat("CUDA backend ", op, ": ", s.message())));
}

absl::Status CudaBackend::Impl::Ensure(DeviceArena& arena, size_t bytes) {
  if (arena.capacity() >= bytes) return absl::OkStatus();
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return arena.Reserve(bytes);
}

absl::Status CudaBackend::Impl::UploadRope(const engine::RopeTable& table) {
  const RopeKey key{&table, table.cos.data(), table.sin.data(), table.n_positions, table.half};
  // The values are compared too: a table rebuilt for another model may reuse
  // the same addresses and shape.
  if (rope_cos != nullptr && key == rope_key && table.cos == rope_host_cos &&
      table.sin == rope_host_sin) {
    return absl::OkStatus();
  }
  const size_t n = static_cast<size_t>(std::max<int64_t>(table.n_positions, 0)) *
                   static_cast<size_t>(std::max(table.half, 0));
  if (table.cos.size() != n || table.sin.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("RoPE table of ", table.n_positions, " positions x ", table.half, " has ",
                     table.cos.size(), " cos and ", table.sin.size(), " sin values"));
  }
  rope_cos = rope_sin = nullptr;
  RETURN_IF_ERROR(Ensure(rope_arena, 2 * Aligned(n * sizeof(float))));
  rope_arena.Reset();
  ASSIGN_OR_RETURN(float* c, rope_arena.Take<float>(n, "RoPE cos"));
  ASSIGN_OR_RETURN(float* s, rope_arena.Take<float>(n, "RoPE sin"));
  if (n > 0) {  // from pageable memory: the host data is staged before these return
    CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(c, table.cos.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
    CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(s, table.sin.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream));
  }
  rope_key = key;
  rope_host_cos = table.cos;
  rope_host_sin = table.sin;
  rope_cos = c;
  rope_sin = s;
  return absl::OkStatus();
}

absl::Status CudaBackend::Impl::GemmBf16(const float* x, int t, int in, const float* w, int out,
                                         float* y) {
  const size_t nx = static_cast<size_t>(t) * in, nw = static_cast<size_t>(out) * in;
  RETURN_IF_ERROR(Ensure(bf16_scratch, Aligned(nx * 2) + Aligned(nw * 2)));
  bf16_scratch.Reset();
  ASSIGN_OR_RETURN(__nv_bfloat16 * xb, bf16_scratch.Take<__nv_bfloat16>(nx, "BF16 x"));
  ASSIGN_OR_RETURN(__nv_bfloat16 * wb, bf16_scratch.Take<__nv_bfloat16>(nw, "BF16 w"));
  ToBf16Kernel<<<Blocks(nx), kThreads, 0, stream>>>(x, nx, xb);
  CUDA_RETURN_IF_LAUNCH_FAILED();
  ToBf16Kernel<<<Blocks(nw), kThreads, 0, stream>>>(w, nw, wb);
  CUDA_RETURN_IF_LAUNCH_FAILED();
  const float one = 1.0f, zero = 0.0f;
  CUBLAS_RETURN_IF_ERROR(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, out, t, in, &one, wb,
                                      CUDA_R_16BF, in, xb, CUDA_R_16BF, in, &zero, y, CUDA_R_32F,
                                      out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  return absl::OkStatus();
}

absl::Status CudaBackend::Impl::Linear(const float* x, int64_t t, int64_t in, const float* w,
                                       const float* bias, int64_t out, float* y) {
  // cuBLAS takes int sizes.
  if (t < 0 || t > INT_MAX) return ShapeError("t", t);
  if (in < 0 || in > INT_MAX) return ShapeError("in", in);
  if (out < 0 || out > INT_MAX) return ShapeError("out", out);
  if (t == 0 || out == 0) return absl::OkStatus();
  if (in == 0) {
    CUDA_RETURN_IF_ERROR(cudaMemsetAsync(y, 0, sizeof(float) * t * out, stream));
  } else if (options.gemm == GemmMode::kBf16) {
    RETURN_IF_ERROR(
        GemmBf16(x, static_cast<int>(t), static_cast<int>(in), w, static_cast<int>(out), y));
  } else {
    // Row-major x [t, in], w [out, in], y [t, out] are column-major x^T, w^T,
    // y^T; y^T [out, t] = (w^T)^T [out, in] * x^T [in, t].
    const int m = static_cast<int>(out), n = static_cast<int>(t), k = static_cast<int>(in);
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_RETURN_IF_ERROR(
        cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, w, k, x, k, &zero, y, m));
  }
  if (bias != nullptr) {
    AddBiasKernel<<<Blocks(t * out), kThreads, 0, stream>>>(y, bias, t, out);
    CUDA_RETURN_IF_LAUNCH_FAILED();
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::Impl::Rope(float* x, int64_t t, int n_heads, int head_dim,
                                     const int32_t* positions, const engine::RopeTable& table) {
  if (t < 0) return ShapeError("t", t);
  if (n_heads < 0) return ShapeError("n_heads", n_heads);
  if (head_dim > 0 && table.half > 0 && table.half < head_dim / 2)
    return CpuOnly(absl::StrCat("partial rotary (", 2 * table.half, " of ", head_dim, " dims)"));
  if (head_dim <= 0 || head_dim % 2 != 0 || table.half != head_dim / 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim ", head_dim, " does not match a RoPE table of half ", table.half));
  }
  if (t == 0 || n_heads == 0) return absl::OkStatus();
  RETURN_IF_ERROR(UploadRope(table));
  RopeKernel<<<Blocks(t * n_heads * table.half), kThreads, 0, stream>>>(
      x, t, n_heads, table.half, positions, rope_cos, rope_sin, table.n_positions);
  CUDA_RETURN_IF_LAUNCH_FAILED();
  return absl::OkStatus();
}

absl::Status CudaBackend::Impl::Attention(const float* q, const float* k, const float* v,
                                          const int64_t* seq_start, int64_t n_seqs,
                                          const engine::AttentionShape& shape, float* out) {
  if (n_seqs < 0) return ShapeError("n_seqs", n_seqs);
  if (n_seqs == 0) return absl::OkStatus();
  if (shape.n_kv_heads <= 0 || shape.n_heads <= 0 || shape.n_heads > 65535 ||
      shape.n_heads % shape.n_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("attention heads ", shape.n_heads, " / kv ",
                                                   shape.n_kv_heads, " are not supported"));
  }
  if (shape.softcap > 0 || shape.scale > 0) return CpuOnly("Gemma's attention soft-capping");
  if (shape.window > 0)
    return CpuOnly(absl::StrCat("sliding-window attention (window ", shape.window, ")"));
  if (shape.head_dim <= 0 || shape.head_dim > kMaxAttentionHeadDim ||
      AttentionSharedBytes(shape.head_dim) > static_cast<size_t>(max_shared_optin)) {
    return absl::InvalidArgumentError(absl::StrCat("attention head_dim ", shape.head_dim,
                                                   " is not in [1, ", kMaxAttentionHeadDim, "]"));
  }
  const AttentionArgs args{
      q, k, v, seq_start, n_seqs, shape.n_heads, shape.n_kv_heads, shape.head_dim, out};
  // About 8 blocks per SM in all: a few waves, each block striding over query tiles.
  const int blocks_per_head = std::max(1, (sm_count * 8 + shape.n_heads - 1) / shape.n_heads);
  return LaunchAttention(args, blocks_per_head, stream);
}

absl::Status CudaBackend::Impl::Stats(const float* p, const float* q, int64_t t, int64_t n,
                                      int64_t v0, float* max, float* sum, int32_t* argmax,
                                      float* cross) {
  if (t < 0 || t > INT_MAX) return ShapeError("t", t);
  if (n < 0 || v0 < 0 || v0 + n > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocabulary chunk [", v0, ", ", v0 + n, ") does not fit int32 ids"));
  }
  if (t == 0 || n == 0) return absl::OkStatus();
  return LaunchSoftmaxStats(p, q, t, n, v0, max, sum, argmax, cross, stream);
}

// ---- CudaBackend.

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(
    const CudaBackendOptions& options) {
  if (options.lm_head_chunk <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA backend: lm_head_chunk must be positive, got ", options.lm_head_chunk));
  }
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no CUDA device: ", e != cudaSuccess ? CudaError(e, "cudaGetDeviceCount").message()
                                             : "cudaGetDeviceCount found none"));
  }
  if (options.device < 0 || options.device >= count) {
    return absl::InvalidArgumentError(absl::StrCat("CUDA device ", options.device,
                                                   " does not exist: this machine has ", count,
                                                   " (0..", count - 1, ")"));
  }
  auto impl = std::make_unique<Impl>(options);
  absl::Status s = impl->Init();
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("CUDA device ", options.device, ": ", s.message()));
  }
  return std::unique_ptr<CudaBackend>(new CudaBackend(std::move(impl)));
}

CudaBackend::CudaBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaBackend::~CudaBackend() = default;

std::string CudaBackend::name() const { return absl::StrCat("cuda:", impl_->options.device); }
const CudaBackendOptions& CudaBackend::options() const { return impl_->options; }
absl::Status CudaBackend::status() const { return impl_->status; }

absl::Status CudaBackend::Synchronize() {
  // Waits even after an error: work queued before it may still be running.
  const absl::Status device = CudaError(cudaSetDevice(impl_->options.device), "cudaSetDevice");
  impl_->Fail("Synchronize",
              device.ok() ? CudaError(cudaStreamSynchronize(impl_->stream), "cudaStreamSynchronize")
                          : device);
  return impl_->status;
}

void CudaBackend::Linear(const float* x, int64_t t, int64_t in, const float* w, const float* bias,
                         int64_t out, float* y) {
  impl_->Run("Linear", [&] { return impl_->Linear(x, t, in, w, bias, out, y); });
}

void CudaBackend::RmsNorm(const float* x, const float* weight, int64_t t, int64_t dim, float eps,
                          float* y) {
  impl_->Run("RmsNorm", [&]() -> absl::Status {
    if (t < 0 || t > INT_MAX) return ShapeError("t", t);
    if (t == 0 || dim <= 0) return absl::OkStatus();
    RmsNormKernel<<<static_cast<unsigned>(t), kThreads, 0, impl_->stream>>>(x, weight, dim, eps, y);
    return CudaError(cudaGetLastError(), "RmsNormKernel launch");
  });
}

void CudaBackend::Rope(float* x, int64_t t, int n_heads, int head_dim, const int32_t* positions,
                       const engine::RopeTable& table) {
  impl_->Run("Rope", [&] { return impl_->Rope(x, t, n_heads, head_dim, positions, table); });
}

void CudaBackend::Attention(const float* q, const float* k, const float* v,
                            const int64_t* seq_start, int64_t n_seqs,
                            const engine::AttentionShape& shape, float* out) {
  impl_->Run("Attention", [&] { return impl_->Attention(q, k, v, seq_start, n_seqs, shape, out); });
}

void CudaBackend::QuantizeActivations(const float* x, int64_t t, int64_t dim,
                                      engine::ActQuantType type, float* out) {
  impl_->Run("QuantizeActivations", [&]() -> absl::Status {
    if (t < 0 || t > INT_MAX) return ShapeError("t", t);
    if (t == 0 || dim <= 0) return absl::OkStatus();
    QuantizeActivationsKernel<<<static_cast<unsigned>(t), kThreads, 0, impl_->stream>>>(
        x, dim, type == engine::ActQuantType::kFp8E4m3, out);
    return CudaError(cudaGetLastError(), "QuantizeActivationsKernel launch");
  });
}

void CudaBackend::SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  impl_->Run("SiluMul", [&]() -> absl::Status {
    if (n <= 0) return absl::OkStatus();
    SiluMulKernel<<<Blocks(n), kThreads, 0, impl_->stream>>>(gate, up, n, out);
    return CudaError(cudaGetLastError(), "SiluMulKernel launch");
  });
}

void CudaBackend::GeluTanhMul(const float*, const float*, int64_t, float*) {
  impl_->Run("GeluTanhMul", [] { return CpuOnly("Gemma's GELU-gated MLP"); });
}

void CudaBackend::Softcap(float*, int64_t, float) {
  impl_->Run("Softcap", [] { return CpuOnly("Gemma 2's logit soft-capping"); });
}

void CudaBackend::Add(float* x, const float* y, int64_t n) {
  impl_->Run("Add", [&]() -> absl::Status {
    if (n <= 0) return absl::OkStatus();
    AddKernel<<<Blocks(n), kThreads, 0, impl_->stream>>>(x, y, n);
    return CudaError(cudaGetLastError(), "AddKernel launch");
  });
}

void CudaBackend::Embed(const float* table, int64_t dim, const int32_t* ids, int64_t t,
                        float* out) {
  impl_->Run("Embed", [&]() -> absl::Status {
    if (t < 0 || t > INT_MAX) return ShapeError("t", t);
    if (t == 0 || dim <= 0) return absl::OkStatus();
    EmbedKernel<<<static_cast<unsigned>(t), kThreads, 0, impl_->stream>>>(table, dim, ids, out);
    return CudaError(cudaGetLastError(), "EmbedKernel launch");
  });
}

void CudaBackend::SoftmaxStatsUpdate(const float* logits, int64_t t, int64_t n, int64_t v0,
                                     float* max, float* sum, int32_t* argmax) {
  impl_->Run("SoftmaxStatsUpdate",
             [&] { return impl_->Stats(logits, nullptr, t, n, v0, max, sum, argmax, nullptr); });
}

void CudaBackend::KlStatsUpdate(const float* p, const float* q, int64_t t, int64_t n, int64_t v0,
                                float* max, float* sum, int32_t* argmax, float* cross) {
  impl_->Run("KlStatsUpdate",
             [&] { return impl_->Stats(p, q, t, n, v0, max, sum, argmax, cross); });
}

}  // namespace compressd::cuda
