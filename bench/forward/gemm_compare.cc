// Which GEMM library for the CPU backend: times y[M,N] = x[M,K] w[N,K]^T (the
// linear-layer GEMM) at SmolLM2-135M's shapes for a 8 x 512 token batch,
// through OpenBLAS cblas_sgemm, oneDNN dnnl_sgemm and libxsmm
// libxsmm_sgemm_omp, with the same thread count (docs/benchmarks.md). Built
// only where libdnnl-dev and libxsmm-dev are installed; for measurement only.
#include <cblas.h>
#include <dnnl.h>
#include <libxsmm.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <vector>

#include "workers/engine/nn/blas_setup.h"

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

template <typename Fn>
double Gflops(int m, int n, int k, Fn&& fn) {
  fn();
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < 7; ++r) {
    const double s = Now();
    fn();
    best = std::min(best, Now() - s);
  }
  return 2.0 * m * n * k / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  compressd::engine::SetBlasThreads(threads);
  omp_set_num_threads(threads);
  libxsmm_init();
  std::printf("threads %d, OpenBLAS core %s, libxsmm target %s\n", threads,
              compressd::engine::GetBlasInfo().core.c_str(), libxsmm_get_target_arch());
  std::printf("%-22s %9s %9s %9s\n", "M x N x K", "OpenBLAS", "oneDNN", "libxsmm");
  const int shapes[][3] = {{4096, 576, 576},   {4096, 192, 576}, {4096, 1536, 576},
                           {4096, 576, 1536},  {4096, 4096, 576}, {2048, 2048, 2048}};
  for (const auto& s : shapes) {
    const int m = s[0], n = s[1], k = s[2];
    std::vector<float> x(int64_t{m} * k, 0.01f), w(int64_t{n} * k, 0.02f), y(int64_t{m} * n);
    const double ob = Gflops(m, n, k, [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x.data(), k, w.data(),
                  k, 0.0f, y.data(), n);
    });
    const double dn = Gflops(m, n, k, [&] {
      dnnl_sgemm('N', 'T', m, n, k, 1.0f, x.data(), k, w.data(), k, 0.0f, y.data(), n);
    });
    // Column-major: y^T[N,M] = w[N,K] x^T, i.e. A = w^T stored [K,N] -> transa 'T'.
    const libxsmm_blasint xm = n, xn = m, xk = k, lda = k, ldb = k, ldc = n;
    const float alpha = 1.0f, beta = 0.0f;
    const char ta = 'T', tb = 'N';
    const double xs = Gflops(m, n, k, [&] {
      libxsmm_sgemm_omp(&ta, &tb, &xm, &xn, &xk, &alpha, w.data(), &lda, x.data(), &ldb, &beta,
                        y.data(), &ldc);
    });
    std::printf("%5d x %5d x %5d    %9.1f %9.1f %9.1f\n", m, n, k, ob, dn, xs);
  }
  return 0;
}
