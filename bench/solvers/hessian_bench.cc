// Times the calibration Hessian H = 2 X X^T / n (HessianAccumulator) on
// SmolLM2's input widths: X is `--tokens` random tokens (fed in chunks of
// 2048, as the pipeline does), OpenBLAS at one thread (as compress-worker runs
// it), the accumulator's panels on 1 and on `--threads` threads, and the way
// it was summed before the panels (one ssyrk per chunk, one thread: "SSYRK").
// Prints one "HESSIAN|SSYRK <dim> <threads> <seconds> <GFLOP/s>" line per case (median of
// --repeats; flops counted as tokens * dim * (dim + 1), the upper triangle's
// multiply-adds). bench/solvers/hessian.sh puts PyTorch's float32 X^T X on
// the same data beside it.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "workers/engine/algorithms/hessian.h"

extern "C" {
void openblas_set_num_threads(int num_threads) __attribute__((weak));
}

namespace compressd::engine {
namespace {

double TimeOnce(const std::vector<float>& x, int64_t tokens, int64_t dim, int threads) {
  const auto t0 = std::chrono::steady_clock::now();
  HessianAccumulator acc(dim, threads);
  for (int64_t t = 0; t < tokens; t += HessianAccumulator::kChunkTokens) {
    const int64_t k = std::min(HessianAccumulator::kChunkTokens, tokens - t);
    if (!acc.Add(x.data() + t * dim, k).ok()) std::abort();
  }
  if (!acc.Hessian().ok()) std::abort();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Before the panels: each chunk one float32 ssyrk, folded into float64.
double TimeSsyrk(const std::vector<float>& x, int64_t tokens, int64_t dim) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<double> sum(dim * dim, 0.0);
  std::vector<float> scratch(dim * dim);
  const int n = static_cast<int>(dim);
  for (int64_t t = 0; t < tokens; t += HessianAccumulator::kChunkTokens) {
    const int k = static_cast<int>(std::min(HessianAccumulator::kChunkTokens, tokens - t));
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, 1.0f, x.data() + t * dim, n, 0.0f,
                scratch.data(), n);
    for (int64_t i = 0; i < dim; ++i) {
      for (int64_t j = i; j < dim; ++j) sum[i * dim + j] += scratch[i * dim + j];
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void Print(const char* what, int64_t dim, int threads, int64_t tokens, double s) {
  std::printf("%s %lld %d %.4f %.1f\n", what, static_cast<long long>(dim), threads, s,
              static_cast<double>(tokens) * dim * (dim + 1) / s * 1e-9);
}

int Main(int argc, char** argv) {
  std::string dims = "576,1536";
  int64_t tokens = 16384;
  int threads = 2, repeats = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--dims") dims = value;
    if (flag == "--tokens") tokens = std::max<int64_t>(1, std::atoll(value.c_str()));
    if (flag == "--threads") threads = std::max(1, std::atoi(value.c_str()));
    if (flag == "--repeats") repeats = std::max(1, std::atoi(value.c_str()));
  }
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(1);
  std::printf("# tokens %lld, OpenBLAS at 1 thread, panels of %lld rows\n",
              static_cast<long long>(tokens),
              static_cast<long long>(HessianAccumulator::kPanelRows));
  for (const std::string& d : std::vector<std::string>(absl::StrSplit(dims, ','))) {
    int64_t dim = 0;
    if (!absl::SimpleAtoi(d, &dim) || dim <= 0) {
      std::fprintf(stderr, "--dims: \"%s\" is not a positive width\n", d.c_str());
      return 2;
    }
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(tokens * dim);
    for (float& v : x) v = normal(rng);
    std::vector<double> times;
    for (int r = 0; r < repeats; ++r) times.push_back(TimeSsyrk(x, tokens, dim));
    Print("SSYRK", dim, 1, tokens, Median(times));
    for (int t : {1, threads}) {
      times.clear();
      for (int r = 0; r < repeats; ++r) times.push_back(TimeOnce(x, tokens, dim, t));
      Print("HESSIAN", dim, t, tokens, Median(times));
      if (threads == 1) break;
    }
  }
  return 0;
}

}  // namespace
}  // namespace compressd::engine

int main(int argc, char** argv) { return compressd::engine::Main(argc, argv); }
