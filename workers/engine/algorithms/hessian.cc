// Hessian accumulation, the inverse-Hessian Cholesky factor and the
// reconstruction error; see hessian.h for the math and cost.
#include "workers/engine/algorithms/hessian.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "Eigen/Dense"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/algorithms/blas_threads.h"
#include "workers/engine/algorithms/obs_sweep.h"

// LAPACK (shipped inside OpenBLAS, which the build already links). Fortran
// calling convention: every argument by pointer, then the hidden lengths of
// the character arguments.
extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
void dtrtri_(const char* uplo, const char* diag, const int* n, double* a, const int* lda, int* info,
             size_t uplo_len, size_t diag_len);
}

namespace compressd::engine {

HessianAccumulator::HessianAccumulator(int64_t dim, int threads)
    : dim_(std::max<int64_t>(dim, 0)), threads_(std::max(threads, 1)), sum_(dim_ * dim_, 0.0) {}

absl::Status HessianAccumulator::AddPanel(const float* x, int k, int64_t r0, int64_t r1,
                                          float* scratch, int64_t tokens_at) {
  const int n = static_cast<int>(dim_);
  const int m = static_cast<int>(r1 - r0);
  float* c = scratch + r0 * dim_ + r0;
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, m, k, 1.0f, x + r0, n, 0.0f, c, n);
  if (r1 < dim_) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, static_cast<int>(dim_ - r1), k, 1.0f,
                x + r0, n, x + r1, n, 0.0f, c + m, n);
  }
  for (int64_t i = r0; i < r1; ++i) {
    // A non-finite input makes its own diagonal entry non-finite.
    if (!std::isfinite(scratch[i * dim_ + i])) {
      return absl::InvalidArgumentError(absl::StrCat("Hessian: calibration input column ", i,
                                                     " is not finite (or overflows) in tokens [",
                                                     tokens_at, ", ", tokens_at + k, ")"));
    }
  }
  for (int64_t i = r0; i < r1; ++i) {
    const float* s = scratch + i * dim_;
    double* d = sum_.data() + i * dim_;
    for (int64_t j = i; j < dim_; ++j) d[j] += s[j];
  }
  return absl::OkStatus();
}

absl::Status HessianAccumulator::Add(const float* x, int64_t tokens) {
  if (tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("Hessian: negative token count ", tokens));
  }
  // One chunk's float32 products; freed on return (a block's memory peak is
  // the solve's, which this must not add to).
  std::vector<float> scratch(tokens > 0 ? dim_ * dim_ : 0);
  const int64_t panels = (dim_ + kPanelRows - 1) / kPanelRows;
  // Panels by index; the first has the most work, so handing them out in
  // order balances the threads. Each thread writes only its panels' rows.
  std::vector<absl::Status> status(static_cast<size_t>(panels));
  for (int64_t t0 = 0; t0 < tokens; t0 += kChunkTokens) {
    const int k = static_cast<int>(std::min(kChunkTokens, tokens - t0));
    std::atomic<int64_t> next{0};
    auto work = [&] {
      for (int64_t p; (p = next.fetch_add(1)) < panels;) {
        const int64_t r0 = p * kPanelRows;
        status[p] = AddPanel(x + t0 * dim_, k, r0, std::min(dim_, r0 + kPanelRows), scratch.data(),
                             tokens_ + t0);
      }
    };
    std::vector<std::thread> pool;
    for (int i = 1; i < std::min<int64_t>(threads_, panels); ++i) pool.emplace_back(work);
    work();
    for (std::thread& th : pool) th.join();
    for (const absl::Status& s : status) RETURN_IF_ERROR(s);  // the lowest column's
  }
  tokens_ += tokens;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> HessianAccumulator::Hessian() const {
  if (tokens_ == 0) {
    return absl::FailedPreconditionError("Hessian: no calibration tokens were added");
  }
  const double scale = 2.0 / static_cast<double>(tokens_);
  std::vector<float> h(dim_ * dim_);
  for (int64_t i = 0; i < dim_; ++i) {
    for (int64_t j = i; j < dim_; ++j) {
      const float v = static_cast<float>(sum_[i * dim_ + j] * scale);
      h[i * dim_ + j] = v;
      h[j * dim_ + i] = v;
    }
  }
  return h;
}

std::vector<float> HessianRef(const float* x, int64_t tokens, int64_t dim) {
  std::vector<float> h(dim * dim, 0.0f);
  for (int64_t i = 0; i < dim; ++i) {
    for (int64_t j = 0; j < dim; ++j) {
      double s = 0.0;
      for (int64_t t = 0; t < tokens; ++t) s += double{x[t * dim + i]} * x[t * dim + j];
      h[i * dim + j] = static_cast<float>(2.0 * s / static_cast<double>(tokens));
    }
  }
  return h;
}

std::vector<float> InputNormsFromHessian(const float* h, int64_t dim) {
  std::vector<float> norms(dim);
  for (int64_t j = 0; j < dim; ++j) norms[j] = std::sqrt(std::max(h[j * dim + j], 0.0f));
  return norms;
}

absl::StatusOr<std::vector<float>> FixedHessianDiagonal(const float* h, int64_t dim,
                                                        absl::string_view tensor) {
  std::vector<float> diag(dim);
  for (int64_t j = 0; j < dim; ++j) {
    const float d = h[j * dim + j];
    if (!std::isfinite(d) || d < 0.0f) {
      return absl::InvalidArgumentError(absl::StrCat(tensor, ": Hessian diagonal entry ", j, " is ",
                                                     d, " (must be finite, >= 0)"));
    }
    diag[j] = d == 0.0f ? 1.0f : d;
  }
  return diag;
}

double HessianDamping(const std::vector<float>& diag, double percdamp) {
  double sum = 0.0;
  for (float d : diag) sum += d;
  return percdamp * sum / static_cast<double>(diag.size());
}

void FactorMatrix::Free::operator()(float* p) const { std::free(p); }

namespace {

// Rounds the float64 matrix a [n*n] to float32 in place, into the first half
// of the same buffer, zeroing below the diagonal, then gives the second half
// back. Float k lands in bytes [4k, 4k + 4), which only overlap doubles
// before index k/2 + 1, all read already; each chunk is converted into a
// local buffer before its bytes are stored (memcpy: no aliasing assumptions).
FactorMatrix RoundToFloatInPlace(double* a, int64_t n) {
  const int64_t total = n * n;
  constexpr int64_t kChunk = 4096;
  float local[kChunk];
  char* bytes = reinterpret_cast<char*>(a);
  for (int64_t k0 = 0; k0 < total; k0 += kChunk) {
    const int64_t len = std::min(kChunk, total - k0);
    for (int64_t t = 0; t < len; ++t) {
      const int64_t k = k0 + t;
      local[t] = k % n < k / n ? 0.0f : static_cast<float>(a[k]);
    }
    std::memcpy(bytes + k0 * sizeof(float), local, len * sizeof(float));
  }
  void* shrunk = std::realloc(a, std::max<int64_t>(total, 1) * sizeof(float));
  return FactorMatrix(static_cast<float*>(shrunk != nullptr ? shrunk : static_cast<void*>(a)),
                      static_cast<size_t>(total));
}

struct FreeDoubles {
  void operator()(double* p) const { std::free(p); }
};

}  // namespace

absl::StatusOr<FactorMatrix> InverseHessianUpper(const float* h, int64_t dim, const int64_t* perm,
                                                 double percdamp, absl::string_view tensor,
                                                 int threads) {
  if (dim <= 0) return absl::InvalidArgumentError(absl::StrCat(tensor, ": empty Hessian"));
  auto diag_or = FixedHessianDiagonal(h, dim, tensor);
  if (!diag_or.ok()) return diag_or.status();
  const std::vector<float>& diag = *diag_or;
  const double damp = HessianDamping(diag, percdamp);
  auto src = [perm](int64_t i) { return perm != nullptr ? perm[i] : i; };
  std::unique_ptr<double, FreeDoubles> buffer(
      static_cast<double*>(std::malloc(dim * dim * sizeof(double))));
  if (buffer == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat(tensor, ": cannot allocate the ", dim, " x ", dim, " float64 factorization"));
  }
  double* a = buffer.get();
  // a = J Hp J (Hp = H[perm][:, perm], J reverses the order): a(i, j) = Hp(n-1-i, n-1-j).
  for (int64_t i = 0; i < dim; ++i) {
    const float* hrow = h + src(dim - 1 - i) * dim;
    double* arow = a + i * dim;
    for (int64_t j = 0; j < dim; ++j) arow[j] = hrow[src(dim - 1 - j)];
    arow[i] = double{diag[src(dim - 1 - i)]} + damp;
  }
  // In LAPACK's column-major view a is the same symmetric matrix. dpotrf('U')
  // gives a = R^T R; the row-major view of R is L = R^T. dtrtri('U') turns R
  // into R^-1, whose row-major view is L^-1 (lower).
  const int n = static_cast<int>(dim);
  int info = 0, trtri_info = 0;
  {  // OpenBLAS's threads only where the factorization outweighs their spinning
     // after the call, which slows the forward's own threads (blas_threads.h).
    ScopedBlasThreads blas(dim >= kThreadedFactorDim ? threads : 1);
    dpotrf_("U", &n, a, &n, &info, 1);
    if (info == 0) dtrtri_("U", "N", &n, a, &n, &trtri_info, 1, 1);
  }
  if (info != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        tensor, ": Hessian is not positive definite after damping (percdamp=", percdamp,
        ", LAPACK dpotrf info ", info, "); use more calibration data or a larger percdamp"));
  }
  if (trtri_info != 0) {
    info = trtri_info;
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": singular Cholesky factor (LAPACK dtrtri info ", info, ")"));
  }
  // U(i, j) = L^-1(n-1-i, n-1-j) = a[n^2 - 1 - (i n + j)]: the flat array
  // reversed; then rounded to float32 with zeros below the diagonal.
  std::reverse(a, a + dim * dim);
  return RoundToFloatInPlace(buffer.release(), dim);
}

std::vector<float> InverseHessianUpperRef(const float* h, int64_t dim, double percdamp) {
  std::vector<float> diag(dim);
  for (int64_t j = 0; j < dim; ++j) diag[j] = h[j * dim + j] == 0.0f ? 1.0f : h[j * dim + j];
  const double damp = HessianDamping(diag, percdamp);
  Eigen::MatrixXd m(dim, dim);
  for (int64_t i = 0; i < dim; ++i) {
    for (int64_t j = 0; j < dim; ++j) m(i, j) = i == j ? diag[i] + damp : h[i * dim + j];
  }
  const Eigen::MatrixXd inv = m.inverse();
  const Eigen::MatrixXd u = inv.llt().matrixU();
  std::vector<float> out(dim * dim);
  for (int64_t i = 0; i < dim; ++i) {
    for (int64_t j = 0; j < dim; ++j) out[i * dim + j] = static_cast<float>(u(i, j));
  }
  return out;
}

namespace {

// sum_ij (A H)_ij A_ij for A [rows, cols].
// The product's rows are split over the threads (ParallelGemmRows); the sum
// runs in order.
double QuadraticTrace(const float* a, const float* h, int64_t rows, int64_t cols, int threads) {
  std::vector<float> ah(rows * cols);
  ParallelGemmRows(rows, threads, [&](int64_t r0, int64_t r1) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(r1 - r0),
                static_cast<int>(cols), static_cast<int>(cols), 1.0f, a + r0 * cols,
                static_cast<int>(cols), h, static_cast<int>(cols), 0.0f, ah.data() + r0 * cols,
                static_cast<int>(cols));
  });
  double s = 0.0;
  for (int64_t i = 0; i < rows * cols; ++i) s += double{ah[i]} * a[i];
  return s;
}

}  // namespace

double RelativeReconstructionError(const float* w, const float* w_new, const float* h, int64_t rows,
                                   int64_t cols, int threads) {
  std::vector<float> d(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) d[i] = w[i] - w_new[i];
  const double den = QuadraticTrace(w, h, rows, cols, threads);
  if (den == 0.0) return 0.0;
  return QuadraticTrace(d.data(), h, rows, cols, threads) / den;
}

double RelativeReconstructionErrorRef(const float* w, const float* w_new, const float* h,
                                      int64_t rows, int64_t cols) {
  double num = 0.0;
  double den = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < cols; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        const double hij = h[i * cols + j];
        const double di = double{w[r * cols + i]} - w_new[r * cols + i];
        const double dj = double{w[r * cols + j]} - w_new[r * cols + j];
        num += di * hij * dj;
        den += double{w[r * cols + i]} * hij * w[r * cols + j];
      }
    }
  }
  return den == 0.0 ? 0.0 : num / den;
}

}  // namespace compressd::engine
