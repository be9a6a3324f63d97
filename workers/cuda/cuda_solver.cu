// CudaSolver: host orchestration of the device solve; see cuda_solver.h.
#include "workers/cuda/cuda_solver.h"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/cuda/cuda_status.h"
#include "workers/cuda/device_buffer.h"
#include "workers/cuda/solver_kernels.h"
#include "workers/engine/algorithms/selection.h"

namespace compressd::cuda {

using engine::SweepOptions;
using engine::SweepPruning;
using engine::SweepState;

uint64_t SolverBytes(int64_t rows, int64_t cols, int64_t block) {
  const uint64_t r = rows, c = cols, b = block;
  const uint64_t sweep = 16 * c * c + 6 * r * c + 32 * r * b + 8 * r + 32 * c;
  const uint64_t error = 4 * c * c + 16 * r * c;
  return std::max(sweep, error) + (64u << 20);  // + cuSOLVER/CUB workspaces, alignment
}

struct CudaSolver::Impl {
  int device = 0;
  uint64_t free_bytes = 0;  // when created
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cusolverDnHandle_t lapack = nullptr;
  DeviceArena arena;

  ~Impl() {
    if (lapack != nullptr) cusolverDnDestroy(lapack);
    if (blas != nullptr) cublasDestroy(blas);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }
  absl::Status Init(int index) {
    device = index;
    CUDA_RETURN_IF_ERROR(cudaSetDevice(index));
    size_t free_now = 0, total = 0;
    CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_now, &total));
    free_bytes = free_now;
    CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CUBLAS_RETURN_IF_ERROR(cublasCreate(&blas));
    CUBLAS_RETURN_IF_ERROR(cublasSetStream(blas, stream));
    // Plain FP32 GEMMs (no TF32): the lazy updates must round like the CPU's.
    CUBLAS_RETURN_IF_ERROR(cublasSetMathMode(blas, CUBLAS_PEDANTIC_MATH));
    CUSOLVER_RETURN_IF_ERROR(cusolverDnCreate(&lapack));
    CUSOLVER_RETURN_IF_ERROR(cusolverDnSetStream(lapack, stream));
    return absl::OkStatus();
  }
  // The arena holds at least `bytes` (grown, never shrunk: one allocation per
  // job unless a later layer is larger), emptied.
  absl::Status Need(uint64_t bytes) {
    if (arena.capacity() < bytes) RETURN_IF_ERROR(arena.Reserve(bytes));
    arena.Reset();
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status Upload(T* dst, const T* src, size_t n) {
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyHostToDevice, stream));
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status Download(T* dst, const T* src, size_t n) {
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToHost, stream));
    return absl::OkStatus();
  }
  absl::Status Sync() {
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    return absl::OkStatus();
  }

  absl::Status Factor(const float* h, const int64_t* perm, double percdamp,
                      absl::string_view tensor, int64_t n, float* d_u);
  absl::Status Sweep(const SweepOptions& o, const engine::SweepPlan& plan, const float* d_u,
                     SweepState* s);
  absl::Status SelectMask(const SweepOptions& o, int64_t rows, int64_t cols, int64_t i1,
                          int64_t count, const float* d_wt, const float* d_u, uint8_t* d_pruned);
  absl::StatusOr<double> QuadraticTrace(const float* d_a, const float* d_h, int64_t rows,
                                        int64_t cols, float* d_t, double* d_out);
};

// The damped inverse-Hessian factor U of h (hessian.h InverseHessianUpper)
// into d_u, in float64 on the device.
absl::Status CudaSolver::Impl::Factor(const float* h, const int64_t* perm, double percdamp,
                                      absl::string_view tensor, int64_t n, float* d_u) {
  ASSIGN_OR_RETURN(std::vector<float> diag, engine::FixedHessianDiagonal(h, n, tensor));
  const double damp = engine::HessianDamping(diag, percdamp);
  ASSIGN_OR_RETURN(float* d_h, arena.Take<float>(n * n, "Hessian"));
  ASSIGN_OR_RETURN(double* d_a, arena.Take<double>(n * n, "float64 factorization"));
  ASSIGN_OR_RETURN(float* d_diag, arena.Take<float>(n, "diagonal"));
  ASSIGN_OR_RETURN(int* d_info, arena.Take<int>(1, "info"));
  int64_t* d_perm = nullptr;
  if (perm != nullptr) {
    ASSIGN_OR_RETURN(d_perm, arena.Take<int64_t>(n, "permutation"));
    RETURN_IF_ERROR(Upload(d_perm, perm, n));
  }
  RETURN_IF_ERROR(Upload(d_h, h, n * n));
  RETURN_IF_ERROR(Upload(d_diag, diag.data(), n));
  LaunchBuildReversed(d_h, d_perm, d_diag, damp, n, d_a, stream);
  CUDA_RETURN_IF_LAUNCH_FAILED();
  const int ni = static_cast<int>(n);
  int lwork = 0;
  CUSOLVER_RETURN_IF_ERROR(
      cusolverDnDpotrf_bufferSize(lapack, CUBLAS_FILL_MODE_UPPER, ni, d_a, ni, &lwork));
  size_t tri_dev = 0, tri_host = 0;
  CUSOLVER_RETURN_IF_ERROR(cusolverDnXtrtri_bufferSize(lapack, CUBLAS_FILL_MODE_UPPER,
                                                       CUBLAS_DIAG_NON_UNIT, n, CUDA_R_64F, d_a,
                                                       n, &tri_dev, &tri_host));
  ASSIGN_OR_RETURN(double* d_work, arena.Take<double>(lwork, "dpotrf workspace"));
  ASSIGN_OR_RETURN(char* d_tri, arena.Take<char>(tri_dev, "trtri workspace"));
  std::vector<char> host_tri(std::max<size_t>(tri_host, 1));
  int info = 0;
  CUSOLVER_RETURN_IF_ERROR(
      cusolverDnDpotrf(lapack, CUBLAS_FILL_MODE_UPPER, ni, d_a, ni, d_work, lwork, d_info));
  RETURN_IF_ERROR(Download(&info, d_info, 1));
  RETURN_IF_ERROR(Sync());
  if (info != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        tensor, ": Hessian is not positive definite after damping (percdamp=", percdamp,
        ", cuSOLVER dpotrf info ", info, "); use more calibration data or a larger percdamp"));
  }
  CUSOLVER_RETURN_IF_ERROR(cusolverDnXtrtri(lapack, CUBLAS_FILL_MODE_UPPER, CUBLAS_DIAG_NON_UNIT, n,
                                            CUDA_R_64F, d_a, n, d_tri, tri_dev, host_tri.data(),
                                            tri_host, d_info));
  RETURN_IF_ERROR(Download(&info, d_info, 1));
  RETURN_IF_ERROR(Sync());
  if (info != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": singular Cholesky factor (cuSOLVER trtri info ", info, ")"));
  }
  LaunchFinishFactor(d_a, n, d_u, stream);
  CUDA_RETURN_IF_LAUNCH_FAILED();
  return absl::OkStatus();
}

// Marks the block's unstructured mask (obs_sweep.cc SelectBlockMask).
absl::Status CudaSolver::Impl::SelectMask(const SweepOptions& o, int64_t rows, int64_t cols,
                                          int64_t i1, int64_t count, const float* d_wt,
                                          const float* d_u, uint8_t* d_pruned) {
  const bool per_row = o.pruning.kind == SweepPruning::Kind::kRow;
  const int n = static_cast<int>(rows * count);
  ASSIGN_OR_RETURN(uint64_t* keys, arena.Take<uint64_t>(n, "mask keys"));
  ASSIGN_OR_RETURN(uint64_t* sorted, arena.Take<uint64_t>(n, "sorted mask keys"));
  LaunchMaskKeys(d_wt, d_u, rows, cols, i1, count, keys, stream);
  CUDA_RETURN_IF_LAUNCH_FAILED();
  size_t temp_bytes = 0;
  if (per_row) {
    ASSIGN_OR_RETURN(int64_t* offsets, arena.Take<int64_t>(rows + 1, "row offsets"));
    LaunchSegmentOffsets(rows, count, offsets, stream);
    CUDA_RETURN_IF_ERROR(cub::DeviceSegmentedRadixSort::SortKeys(
        nullptr, temp_bytes, keys, sorted, n, static_cast<int>(rows), offsets, offsets + 1, 0, 64,
        stream));
    ASSIGN_OR_RETURN(char* temp, arena.Take<char>(temp_bytes, "segmented sort workspace"));
    CUDA_RETURN_IF_ERROR(cub::DeviceSegmentedRadixSort::SortKeys(
        temp, temp_bytes, keys, sorted, n, static_cast<int>(rows), offsets, offsets + 1, 0, 64,
        stream));
    LaunchMarkLowest(sorted, rows, count, engine::PruneCount(count, o.pruning.sparsity), count,
                     cols, i1, d_pruned, stream);
  } else {
    CUDA_RETURN_IF_ERROR(
        cub::DeviceRadixSort::SortKeys(nullptr, temp_bytes, keys, sorted, n, 0, 64, stream));
    ASSIGN_OR_RETURN(char* temp, arena.Take<char>(temp_bytes, "sort workspace"));
    CUDA_RETURN_IF_ERROR(
        cub::DeviceRadixSort::SortKeys(temp, temp_bytes, keys, sorted, n, 0, 64, stream));
    LaunchMarkLowest(sorted, 1, n, engine::PruneCount(n, o.pruning.sparsity), count, cols, i1,
                     d_pruned, stream);
  }
  CUDA_RETURN_IF_LAUNCH_FAILED();
  return absl::OkStatus();
}

// The sweep of obs_sweep.cc ObsSweep on the device, with the factor d_u.
absl::Status CudaSolver::Impl::Sweep(const SweepOptions& o, const engine::SweepPlan& plan,
                                     const float* d_u, SweepState* s) {
  const int64_t rows = s->rows, cols = s->cols, block = plan.block;
  const bool grid = o.grid.has_value();
  const int64_t groups = grid ? engine::GroupCount(*o.grid, cols) : 0;
  if (grid && o.grid->scale_bits > 0 && !o.static_grids) {
    return absl::UnimplementedError(
        "scale_bits with groups chosen during the sweep (no static_groups) runs on the CPU "
        "solver only: use static_groups, or a CPU worker");
  }
  if (grid && o.grid->fp8) {
    return absl::UnimplementedError(
        "an fp8 (E4M3) grid runs on the CPU solver only: use a CPU worker");
  }
  if (grid && engine::FractionalZeros(*o.grid)) {
    return absl::UnimplementedError(
        "an asymmetric grid with scale_bits (fractional zero points) runs on the CPU solver "
        "only: use a CPU worker");
  }
  ASSIGN_OR_RETURN(float* d_w, arena.Take<float>(rows * cols, "weights"));
  ASSIGN_OR_RETURN(uint8_t* d_pruned, arena.Take<uint8_t>(rows * cols, "mask"));
  ASSIGN_OR_RETURN(float* d_wt, arena.Take<float>(rows * block, "block"));
  ASSIGN_OR_RETURN(float* d_et, arena.Take<float>(rows * block, "block errors"));
  SweepBlockArgs a;
  a.rows = rows;
  a.cols = cols;
  a.u = d_u;
  a.w = d_w;
  a.wt = d_wt;
  a.et = d_et;
  a.pruned = d_pruned;
  a.nm_n = o.pruning.kind == SweepPruning::Kind::kNM ? o.pruning.n : 0;
  a.nm_m = o.pruning.kind == SweepPruning::Kind::kNM ? o.pruning.m : 0;
  RETURN_IF_ERROR(Upload(d_w, s->w, rows * cols));
  RETURN_IF_ERROR(Upload(d_pruned, s->pruned.data(), rows * cols));
  if (grid) {
    ASSIGN_OR_RETURN(a.codes, arena.Take<uint8_t>(rows * cols, "codes"));
    ASSIGN_OR_RETURN(a.scales, arena.Take<float>(rows * groups, "scales"));
    ASSIGN_OR_RETURN(a.zeros, arena.Take<float>(rows * groups, "zeros"));
    ASSIGN_OR_RETURN(int32_t* group_of, arena.Take<int32_t>(cols, "groups"));
    a.group_of = group_of;
    CUDA_RETURN_IF_ERROR(cudaMemsetAsync(a.codes, 0, rows * cols, stream));
    RETURN_IF_ERROR(Upload(a.scales, s->scales.data(), rows * groups));
    RETURN_IF_ERROR(Upload(a.zeros, s->zeros.data(), rows * groups));
    RETURN_IF_ERROR(Upload(group_of, s->group_of.data(), cols));
    a.groups = groups;
    a.group_size = o.grid->group_size;
    a.bits = o.grid->bits;
    a.symmetric = o.grid->symmetric;
    a.static_grids = o.static_grids;
  }
  const bool masks = o.pruning.kind == SweepPruning::Kind::kBlock ||
                     o.pruning.kind == SweepPruning::Kind::kRow;
  for (const auto& [i1, i2] : plan.blocks) {
    const int64_t count = i2 - i1;
    LaunchTransposeIn(d_w + i1, cols, rows, count, d_wt, stream);
    if (masks) {
      const size_t mark = arena.used();
      RETURN_IF_ERROR(SelectMask(o, rows, cols, i1, count, d_wt, d_u, d_pruned));
      arena.Rewind(mark);  // stream order keeps the freed keys alive until their kernels ran
    }
    a.i1 = i1;
    a.i2 = i2;
    LaunchSweepBlock(a, stream);
    LaunchTransposeOut(d_wt, rows, count, d_w + i1, cols, stream);
    CUDA_RETURN_IF_LAUNCH_FAILED();
    if (i2 < cols) {
      // W[:, i2:] -= E U[i1:i2, i2:] (row-major), as column-major
      // W^T[i2:, :] -= U[i1:i2, i2:]^T E^T with E held as [count, rows].
      const float minus_one = -1.0f, one = 1.0f;
      CUBLAS_RETURN_IF_ERROR(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, static_cast<int>(cols - i2),
                                         static_cast<int>(rows), static_cast<int>(count),
                                         &minus_one, d_u + i1 * cols + i2, static_cast<int>(cols),
                                         d_et, static_cast<int>(rows), &one, d_w + i2,
                                         static_cast<int>(cols)));
    }
  }
  RETURN_IF_ERROR(Download(s->w, d_w, rows * cols));
  RETURN_IF_ERROR(Download(s->pruned.data(), d_pruned, rows * cols));
  if (grid) {
    RETURN_IF_ERROR(Download(s->codes.data(), a.codes, rows * cols));
    RETURN_IF_ERROR(Download(s->scales.data(), a.scales, rows * groups));
    RETURN_IF_ERROR(Download(s->zeros.data(), a.zeros, rows * groups));
  }
  return Sync();
}

absl::StatusOr<double> CudaSolver::Impl::QuadraticTrace(const float* d_a, const float* d_h,
                                                        int64_t rows, int64_t cols, float* d_t,
                                                        double* d_out) {
  // T = A H (row-major), as column-major T^T = H A^T (H symmetric).
  const float one = 1.0f, zero = 0.0f;
  const int c = static_cast<int>(cols);
  CUBLAS_RETURN_IF_ERROR(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, c, static_cast<int>(rows), c,
                                     &one, d_h, c, d_a, c, &zero, d_t, c));
  CUDA_RETURN_IF_ERROR(cudaMemsetAsync(d_out, 0, sizeof(double), stream));
  LaunchDot(d_t, d_a, rows * cols, d_out, stream);
  CUDA_RETURN_IF_LAUNCH_FAILED();
  double out = 0.0;
  RETURN_IF_ERROR(Download(&out, d_out, 1));
  RETURN_IF_ERROR(Sync());
  return out;
}

namespace {

// H = 2 X X^T / n on the device (hessian.h HessianAccumulator): each chunk
// of at most kChunkTokens tokens is one float32 ssyrk, folded into a float64
// sum. Its own buffers (16 dim^2 + 8 kChunkTokens dim bytes), freed with it.
class CudaHessianSum final : public engine::HessianSum {
 public:
  CudaHessianSum(CudaSolver::Impl& impl, int64_t dim) : impl_(impl), dim_(dim) {}

  // After an error the sum is not usable (a chunk may be half added): the
  // job fails anyway. Must not outlive the solver that made it.
  absl::Status Add(const float* x, int64_t tokens) override {
    CUDA_RETURN_IF_ERROR(cudaSetDevice(impl_.device));
    if (tokens < 0) {
      return absl::InvalidArgumentError(absl::StrCat("Hessian: negative token count ", tokens));
    }
    if (tokens == 0) return absl::OkStatus();
    RETURN_IF_ERROR(Allocate());
    constexpr int64_t kChunk = engine::HessianAccumulator::kChunkTokens;
    const int n = static_cast<int>(dim_);
    for (int64_t t0 = 0; t0 < tokens; t0 += kChunk) {
      const int k = static_cast<int>(std::min(kChunk, tokens - t0));
      RETURN_IF_ERROR(impl_.Upload(chunk_.get(), x + t0 * dim_, k * dim_));
      // Row-major X [k, dim] is column-major X^T [dim, k]: C = X^T X, upper.
      const float one = 1.0f, zero = 0.0f;
      CUBLAS_RETURN_IF_ERROR(cublasSsyrk(impl_.blas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, n, k,
                                         &one, chunk_.get(), n, &zero, tmp_.get(), n));
      const int none = n;
      RETURN_IF_ERROR(impl_.Upload(bad_.get(), &none, 1));
      LaunchFoldHessian(tmp_.get(), dim_, sum_.get(), bad_.get(), impl_.stream);
      CUDA_RETURN_IF_LAUNCH_FAILED();
      int bad = n;
      RETURN_IF_ERROR(impl_.Download(&bad, bad_.get(), 1));
      RETURN_IF_ERROR(impl_.Sync());
      if (bad < n) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Hessian: calibration input column ", bad, " is not finite (or overflows) in tokens [",
            tokens_ + t0, ", ", tokens_ + t0 + k, ")"));
      }
    }
    tokens_ += tokens;
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<float>> Hessian() override {
    if (tokens_ == 0) {
      return absl::FailedPreconditionError("Hessian: no calibration tokens were added");
    }
    CUDA_RETURN_IF_ERROR(cudaSetDevice(impl_.device));
    LaunchHessianOut(sum_.get(), dim_, 2.0 / static_cast<double>(tokens_), tmp_.get(),
                     impl_.stream);
    CUDA_RETURN_IF_LAUNCH_FAILED();
    std::vector<float> h(dim_ * dim_);
    RETURN_IF_ERROR(impl_.Download(h.data(), tmp_.get(), dim_ * dim_));
    RETURN_IF_ERROR(impl_.Sync());
    return h;
  }

 private:
  absl::Status Allocate() {
    if (sum_.get() != nullptr) return absl::OkStatus();
    CUDA_RETURN_IF_ERROR(cudaSetDevice(impl_.device));
    RETURN_IF_ERROR(sum_.Allocate(dim_ * dim_));
    RETURN_IF_ERROR(tmp_.Allocate(dim_ * dim_));
    RETURN_IF_ERROR(chunk_.Allocate(engine::HessianAccumulator::kChunkTokens * dim_));
    RETURN_IF_ERROR(bad_.Allocate(1));
    CUDA_RETURN_IF_ERROR(cudaMemsetAsync(sum_.get(), 0, dim_ * dim_ * sizeof(double), impl_.stream));
    return absl::OkStatus();
  }

  CudaSolver::Impl& impl_;
  const int64_t dim_;
  int64_t tokens_ = 0;
  DeviceBuffer<double> sum_;
  DeviceBuffer<float> tmp_;
  DeviceBuffer<float> chunk_;
  DeviceBuffer<int> bad_;
};

}  // namespace

std::unique_ptr<engine::HessianSum> CudaSolver::NewHessian(int64_t dim, int /*threads*/) {
  return std::make_unique<CudaHessianSum>(*impl_, dim);
}

CudaSolver::CudaSolver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaSolver::~CudaSolver() = default;

absl::StatusOr<std::unique_ptr<CudaSolver>> CudaSolver::Create(const CudaSolverOptions& options) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || options.device < 0 || options.device >= count) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cuda:", options.device, ": no such CUDA device (this machine has ", count, "",
        e != cudaSuccess ? absl::StrCat("; ", cudaGetErrorString(e)) : std::string(), ")"));
  }
  auto impl = std::make_unique<Impl>();
  RETURN_IF_ERROR(impl->Init(options.device));
  return std::unique_ptr<CudaSolver>(new CudaSolver(std::move(impl)));
}

std::string CudaSolver::name() const { return absl::StrCat("cuda:", impl_->device); }

uint64_t CudaSolver::DeviceBytes(int64_t rows, int64_t cols, int64_t block) const {
  const uint64_t c = cols;
  return SolverBytes(rows, cols, block) + 16 * c * c +
         8 * static_cast<uint64_t>(engine::HessianAccumulator::kChunkTokens) * c;
}

uint64_t CudaSolver::DeviceMemoryBytes() const { return impl_->free_bytes; }

absl::Status CudaSolver::FactorAndSweep(const float* h, const int64_t* perm, double percdamp,
                                        absl::string_view tensor, const SweepOptions& options,
                                        SweepState* state) {
  CUDA_RETURN_IF_ERROR(cudaSetDevice(impl_->device));
  const engine::SweepPlan plan = engine::PrepareSweep(options, state);
  const int64_t cols = state->cols;
  if (state->rows * plan.block >= (int64_t{1} << 31)) {  // CUB's item counts are int
    return absl::InvalidArgumentError(absl::StrCat(tensor, ": ", state->rows, " rows x block ",
                                                   plan.block, " is too large for the device sweep"));
  }
  RETURN_IF_ERROR(impl_->Need(SolverBytes(state->rows, cols, plan.block)));
  ASSIGN_OR_RETURN(float* d_u, impl_->arena.Take<float>(cols * cols, "factor"));
  const size_t mark = impl_->arena.used();
  RETURN_IF_ERROR(impl_->Factor(h, perm, percdamp, tensor, cols, d_u));
  impl_->arena.Rewind(mark);  // H and the float64 workspace (the stream is ordered)
  return impl_->Sweep(options, plan, d_u, state);
}

absl::StatusOr<double> CudaSolver::RelativeError(const float* w, const float* w_new,
                                                 const float* h, int64_t rows, int64_t cols,
                                                 int /*threads*/) {
  CUDA_RETURN_IF_ERROR(cudaSetDevice(impl_->device));
  Impl& m = *impl_;
  RETURN_IF_ERROR(m.Need(SolverBytes(rows, cols, 1)));
  ASSIGN_OR_RETURN(float* d_h, m.arena.Take<float>(cols * cols, "Hessian"));
  ASSIGN_OR_RETURN(float* d_w, m.arena.Take<float>(rows * cols, "weights"));
  ASSIGN_OR_RETURN(float* d_d, m.arena.Take<float>(rows * cols, "difference"));
  ASSIGN_OR_RETURN(float* d_t, m.arena.Take<float>(rows * cols, "product"));
  ASSIGN_OR_RETURN(double* d_out, m.arena.Take<double>(1, "sum"));
  RETURN_IF_ERROR(m.Upload(d_h, h, cols * cols));
  RETURN_IF_ERROR(m.Upload(d_w, w, rows * cols));
  RETURN_IF_ERROR(m.Upload(d_d, w_new, rows * cols));
  LaunchSub(d_w, d_d, rows * cols, d_d, m.stream);
  CUDA_RETURN_IF_LAUNCH_FAILED();
  ASSIGN_OR_RETURN(const double den, m.QuadraticTrace(d_w, d_h, rows, cols, d_t, d_out));
  if (den == 0.0) return 0.0;
  ASSIGN_OR_RETURN(const double num, m.QuadraticTrace(d_d, d_h, rows, cols, d_t, d_out));
  return num / den;
}

}  // namespace compressd::cuda
