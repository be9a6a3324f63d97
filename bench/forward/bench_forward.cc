// Prompt-processing benchmark of the CPU forward pass: batch x seq tokens
// through embedding, every block, the final norm and the LM head at every
// position (streamed in vocabulary chunks through the online softmax), plus
// the GFLOP/s of the linear layers against this machine's measured sgemm peak
// (large square sgemm, same thread count). Prints "key: value" lines and one
// "RESULT {json}" line for bench/forward/run.sh.
#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "bench/forward/bench_common.h"
#include "bench/forward/timing_backend.h"
#include "workers/engine/model/gguf/gguf_model.h"
#include "workers/engine/nn/bf16_gemm.h"
#include "workers/engine/nn/blas_setup.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/nn/forward.h"

ABSL_FLAG(std::string, model, "", "GGUF model (scripts/fetch-model.sh prints its path)");
ABSL_FLAG(std::string, tokens, "tests/golden/fixtures/nn_ppl_persuasion_tokens.bin",
          "int32 token file; the first batch*seq tokens are used");
ABSL_FLAG(int, threads, 2, "threads");
ABSL_FLAG(int, batch, 8, "sequences per forward");
ABSL_FLAG(int, seq, 512, "tokens per sequence");
ABSL_FLAG(int, reps, 3, "timed forwards (after one warm-up)");
ABSL_FLAG(int, peak_n, 2048, "size of the square sgemm for the peak");
ABSL_FLAG(std::string, compute, "fp32",
          "fp32 or bf16: the linear layers' precision (a recipe's compute; bf16_gemm.h)");

namespace compressd::engine::bench {
namespace {

// The backend the forwards run on (--compute); null after saying why.
std::unique_ptr<CpuBackend> ForwardBackend(int threads, bool bf16) {
  if (bf16 && !Bf16GemmAvailable().ok()) {
    std::fprintf(stderr, "%s\n", Bf16GemmAvailable().ToString().c_str());
    return nullptr;
  }
  CpuBackendOptions o{threads, 128};
  o.bf16_gemm = bf16;
  return std::make_unique<CpuBackend>(o);
}

// GFLOP/s of an n x n x n BF16 GEMM through a bf16 backend's Linear (the
// rounding of both operands included), best of 5, printed with the compute
// mode; 0 without BF16 GEMMs.
double Bf16Peak(int n, int threads, bool bf16_forward) {
  std::printf("compute: %s\n", bf16_forward ? "bf16" : "fp32");
  if (!Bf16GemmAvailable().ok()) return 0.0;
  CpuBackendOptions o{threads, 128};
  o.bf16_gemm = true;
  CpuBackend backend(o);
  std::vector<float> a(int64_t{n} * n, 0.01f), b(int64_t{n} * n, 0.02f), c(int64_t{n} * n);
  backend.Linear(a.data(), n, n, b.data(), nullptr, n, c.data());
  double t = std::numeric_limits<double>::infinity();
  for (int r = 0; r < 5; ++r) {
    const double s = Now();
    backend.Linear(a.data(), n, n, b.data(), nullptr, n, c.data());
    t = std::min(t, Now() - s);
  }
  const double gflops = 2.0 * n * n * n / t / 1e9;
  std::printf("bf16_gemm_peak_gflops: %.1f (oneDNN %s, through Linear)\n", gflops,
              Bf16GemmImplementation());
  return gflops;
}

// GFLOP/s of an n x n x n sgemm, best of 5: through the backend's threading
// (row slices, single-threaded OpenBLAS each) and through OpenBLAS's own threads.
double SgemmPeak(CpuBackend& backend, int n, int threads, double* own_threads) {
  std::vector<float> a(int64_t{n} * n, 0.01f), b(int64_t{n} * n, 0.02f), c(int64_t{n} * n);
  auto best = [&](auto&& fn) {
    fn();
    double t = std::numeric_limits<double>::infinity();
    for (int r = 0; r < 5; ++r) {
      const double s = Now();
      fn();
      t = std::min(t, Now() - s);
    }
    return 2.0 * n * n * n / t / 1e9;
  };
  const double pool = best([&] { backend.Linear(a.data(), n, n, b.data(), nullptr, n, c.data()); });
  SetBlasThreads(threads);
  *own_threads = best([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
  });
  SetBlasThreads(1);
  return std::max(pool, *own_threads);
}

// The first batch x seq tokens of the token file as `batch` sequences.
absl::StatusOr<SequenceBatch> LoadBatch(int batch_n, int seq) {
  auto tokens = ReadTokens(absl::GetFlag(FLAGS_tokens));
  if (!tokens.ok()) return tokens.status();
  if (static_cast<int64_t>(tokens->size()) < int64_t{batch_n} * seq) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file has ", tokens->size(), " tokens, need ", batch_n * seq));
  }
  std::vector<std::vector<int32_t>> seqs;
  for (int b = 0; b < batch_n; ++b) {
    seqs.emplace_back(tokens->begin() + int64_t{b} * seq, tokens->begin() + int64_t{b + 1} * seq);
  }
  return SequenceBatch::Pack(seqs);
}

// Each op's share of `total` seconds, then the peak RSS.
void PrintOpShares(const TimingBackend& timing, double total) {
  std::printf("time by op:");
  for (const auto& [op, sec] : timing.op_seconds()) {
    std::printf(" %s %.1f%%", op.c_str(), 100 * sec / total);
  }
  std::printf("\npeak_rss_mib: %.0f\n", PeakRssMiB());
}

int Run() {
  const int threads = absl::GetFlag(FLAGS_threads);
  CpuBackend cpu(CpuBackendOptions{threads, 128});
  const BlasInfo blas = GetBlasInfo();
  std::printf("blas_core: %s (cpu avx512: %d)\nthreads: %d\n", blas.core.c_str(), blas.cpu_avx512,
              threads);
  double own = 0;
  double peak = SgemmPeak(cpu, absl::GetFlag(FLAGS_peak_n), threads, &own);

  auto model = LoadGgufModel(absl::GetFlag(FLAGS_model));
  if (!model.ok()) {
    std::fprintf(stderr, "loading model: %s\n", model.status().ToString().c_str());
    return 1;
  }
  const int batch_n = absl::GetFlag(FLAGS_batch), seq = absl::GetFlag(FLAGS_seq);
  absl::StatusOr<SequenceBatch> packed = LoadBatch(batch_n, seq);
  if (!packed.ok()) {
    std::fprintf(stderr, "%s\n", packed.status().ToString().c_str());
    return 1;
  }
  const SequenceBatch& batch = *packed;
  const bool bf16 = absl::GetFlag(FLAGS_compute) == "bf16";
  std::unique_ptr<CpuBackend> forward_cpu = ForwardBackend(threads, bf16);
  if (forward_cpu == nullptr) return 1;
  TimingBackend timing(forward_cpu.get());
  auto fwd = LlamaForward::Create(&*model, &timing);
  if (!fwd.ok()) {
    std::fprintf(stderr, "%s\n", fwd.status().ToString().c_str());
    return 1;
  }
  const int64_t t = batch.tokens();
  std::vector<float> max(t), sum(t);
  std::vector<int32_t> argmax(t);
  auto forward = [&]() -> absl::Status {
    std::fill(max.begin(), max.end(), -std::numeric_limits<float>::infinity());
    std::fill(sum.begin(), sum.end(), 0.0f);
    auto normed = fwd->FinalHidden(batch);
    if (!normed.ok()) return normed.status();
    return fwd->LmHeadChunks(normed->data(), t, [&](int64_t v0, int64_t n, const float* l) {
      timing.SoftmaxStatsUpdate(l, t, n, v0, max.data(), sum.data(), argmax.data());
      return absl::OkStatus();
    });
  };
  if (auto st = forward(); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  std::vector<double> times;
  timing.Reset();
  for (int r = 0; r < absl::GetFlag(FLAGS_reps); ++r) {
    const double s = Now();
    if (auto st = forward(); !st.ok()) return 1;
    times.push_back(Now() - s);
  }
  std::sort(times.begin(), times.end());
  // The peak again after the forwards; the larger of the two counts (load noise).
  double own_after = 0;
  peak = std::max(peak, SgemmPeak(cpu, absl::GetFlag(FLAGS_peak_n), threads, &own_after));
  own = std::max(own, own_after);
  std::printf(
      "sgemm_peak_gflops: %.1f (%dx%dx%d; pool row split vs OpenBLAS's own %d threads: "
      "%.1f)\n",
      peak, absl::GetFlag(FLAGS_peak_n), absl::GetFlag(FLAGS_peak_n), absl::GetFlag(FLAGS_peak_n),
      threads, own);
  const double bf16_peak = Bf16Peak(absl::GetFlag(FLAGS_peak_n), threads, bf16);
  const double median = times[times.size() / 2];
  const double linear = timing.linear_flops() / timing.linear_seconds() / 1e9;
  std::printf("tokens: %lld (%d x %d)\nforward_seconds_median: %.3f (best %.3f)\n",
              static_cast<long long>(t), batch_n, seq, median, times.front());
  std::printf("tokens_per_second: %.1f\nlinear_gflops: %.1f (%.0f%% of the %s peak)\n", t / median,
              linear, 100 * linear / (bf16 ? bf16_peak : peak), bf16 ? "bf16" : "sgemm");
  PrintOpShares(timing, std::accumulate(times.begin(), times.end(), 0.0));
  std::printf(
      "RESULT {\"tokens_per_second\": %.2f, \"linear_gflops\": %.2f, "
      "\"sgemm_peak_gflops\": %.2f, \"bf16_peak_gflops\": %.2f, \"compute\": \"%s\", "
      "\"blas_core\": \"%s\"}\n",
      t / median, linear, peak, bf16_peak, bf16 ? "bf16" : "fp32", blas.core.c_str());
  return 0;
}

}  // namespace
}  // namespace compressd::engine::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string warning = compressd::engine::BlasCoreWarning();
  if (!warning.empty()) std::fprintf(stderr, "warning: %s\n", warning.c_str());
  return compressd::engine::bench::Run();
}
