#include "workers/engine/eval/model_compare.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd::engine {
namespace {

struct BatchSums {
  double kl = 0;
  int64_t agree = 0;
  int64_t count = 0;
};

absl::StatusOr<BatchSums> NormedSums(const LlamaForward& dense, const LlamaForward& other,
                                     const SequenceBatch& batch, const float* hp,
                                     const float* hq) {
  const int64_t t = batch.tokens(), vocab = dense.config().vocab;
  const int64_t chunk = std::min(dense.vocab_chunk(), vocab);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  std::vector<float> pmax(t, kNegInf), psum(t, 0.0f), cross(t, 0.0f);
  std::vector<float> qmax(t, kNegInf), qsum(t, 0.0f);
  std::vector<int32_t> parg(t, -1), qarg(t, -1);
  std::vector<float> lp(t * chunk), lq(t * chunk);
  Backend& be = dense.backend();
  for (int64_t v0 = 0; v0 < vocab; v0 += chunk) {
    const int64_t n = std::min(chunk, vocab - v0);
    RETURN_IF_ERROR(dense.LmHeadChunk(hp, t, v0, n, lp.data()));
    RETURN_IF_ERROR(other.LmHeadChunk(hq, t, v0, n, lq.data()));
    be.KlStatsUpdate(lp.data(), lq.data(), t, n, v0, pmax.data(), psum.data(), parg.data(),
                     cross.data());
    be.SoftmaxStatsUpdate(lq.data(), t, n, v0, qmax.data(), qsum.data(), qarg.data());
  }
  BatchSums sums;
  for (int64_t s = 0; s < batch.n_seqs(); ++s) {
    for (int64_t r = batch.seq_start[s]; r + 1 < batch.seq_start[s + 1]; ++r) {
      const double lse_p = double{pmax[r]} + std::log(double{psum[r]});
      const double lse_q = double{qmax[r]} + std::log(double{qsum[r]});
      // Clamp float rounding below zero (KL >= 0).
      sums.kl += std::max(0.0, double{cross[r]} / psum[r] - lse_p + lse_q);
      sums.agree += parg[r] == qarg[r] ? 1 : 0;
      ++sums.count;
    }
  }
  return sums;
}

absl::StatusOr<BatchSums> CompareBatch(const LlamaForward& dense, const LlamaForward& other,
                                       const SequenceBatch& batch) {
  ASSIGN_OR_RETURN(std::vector<float> hp, dense.FinalHidden(batch));
  ASSIGN_OR_RETURN(std::vector<float> hq, other.FinalHidden(batch));
  return NormedSums(dense, other, batch, hp.data(), hq.data());
}

CompareResult ResultOf(const BatchSums& total) {
  CompareResult result;
  result.n_positions = total.count;
  result.mean_kl = total.kl / static_cast<double>(total.count);
  result.top1_agreement = static_cast<double>(total.agree) / static_cast<double>(total.count);
  return result;
}

}  // namespace

absl::StatusOr<CompareResult> CompareNormed(const LlamaForward& dense, const LlamaForward& other,
                                            const SequenceBatch& batch, const float* hp,
                                            const float* hq) {
  ASSIGN_OR_RETURN(BatchSums sums, NormedSums(dense, other, batch, hp, hq));
  return ResultOf(sums);
}

absl::StatusOr<CompareResult> CompareModels(const LlamaForward& dense, const LlamaForward& other,
                                            const std::vector<int32_t>& tokens,
                                            const WindowOptions& options) {
  if (dense.config().vocab != other.config().vocab ||
      dense.config().hidden != other.config().hidden) {
    return absl::InvalidArgumentError(absl::StrCat(
        "models differ in vocab (", dense.config().vocab, " vs ", other.config().vocab,
        ") or hidden size (", dense.config().hidden, " vs ", other.config().hidden, ")"));
  }
  ASSIGN_OR_RETURN(std::vector<std::vector<int32_t>> windows, CutWindows(tokens, options));
  BatchSums total;
  for (size_t w0 = 0; w0 < windows.size(); w0 += options.batch_windows) {
    const size_t w1 = std::min(windows.size(), w0 + static_cast<size_t>(options.batch_windows));
    std::vector<std::vector<int32_t>> part(windows.begin() + w0, windows.begin() + w1);
    ASSIGN_OR_RETURN(SequenceBatch batch, SequenceBatch::Pack(part));
    ASSIGN_OR_RETURN(BatchSums sums, CompareBatch(dense, other, batch));
    total.kl += sums.kl;
    total.agree += sums.agree;
    total.count += sums.count;
  }
  return ResultOf(total);
}

}  // namespace compressd::engine
