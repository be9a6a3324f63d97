#include "workers/engine/eval/perplexity.h"

#include <cmath>
#include <limits>

#include "common/status_macros.h"

namespace compressd::engine {

absl::StatusOr<std::vector<double>> NextTokenNll(const LlamaForward& forward,
                                                 const SequenceBatch& batch) {
  ASSIGN_OR_RETURN(std::vector<float> normed, forward.FinalHidden(batch));
  return NextTokenNllFromNormed(forward, batch, normed.data());
}

absl::StatusOr<std::vector<double>> NextTokenNllFromNormed(const LlamaForward& forward,
                                                           const SequenceBatch& batch,
                                                           const float* normed) {
  const int64_t t = batch.tokens();
  // target[r] = the token row r predicts, -1 for a sequence's last row.
  std::vector<int32_t> target(t, -1);
  for (int64_t s = 0; s < batch.n_seqs(); ++s) {
    for (int64_t r = batch.seq_start[s]; r + 1 < batch.seq_start[s + 1]; ++r) {
      target[r] = batch.ids[r + 1];
    }
  }
  std::vector<float> max(t, -std::numeric_limits<float>::infinity()), sum(t, 0.0f);
  std::vector<float> target_logit(t, 0.0f);
  std::vector<int32_t> argmax(t, -1);
  RETURN_IF_ERROR(forward.LmHeadChunks(
      normed, t, [&](int64_t v0, int64_t n, const float* logits) {
        forward.backend().SoftmaxStatsUpdate(logits, t, n, v0, max.data(), sum.data(),
                                             argmax.data());
        for (int64_t r = 0; r < t; ++r) {
          if (target[r] >= v0 && target[r] < v0 + n) target_logit[r] = logits[r * n + target[r] - v0];
        }
        return absl::OkStatus();
      }));
  std::vector<double> nll;
  nll.reserve(t);
  for (int64_t r = 0; r < t; ++r) {
    if (target[r] < 0) continue;
    nll.push_back(double{max[r]} + std::log(double{sum[r]}) - target_logit[r]);
  }
  return nll;
}

PerplexityResult BatchPerplexity(const std::vector<double>& nll, int64_t n_windows) {
  double total = 0;
  for (double v : nll) total += v;
  PerplexityResult result;
  result.n_windows = n_windows;
  result.n_predicted = static_cast<int64_t>(nll.size());
  result.mean_nll = total / static_cast<double>(nll.size());
  result.perplexity = std::exp(result.mean_nll);
  return result;
}

absl::StatusOr<PerplexityResult> Perplexity(const LlamaForward& forward,
                                            const std::vector<int32_t>& tokens,
                                            const WindowOptions& options) {
  ASSIGN_OR_RETURN(std::vector<std::vector<int32_t>> windows, CutWindows(tokens, options));
  double total = 0;
  int64_t count = 0;
  for (size_t w0 = 0; w0 < windows.size(); w0 += options.batch_windows) {
    const size_t w1 = std::min(windows.size(), w0 + static_cast<size_t>(options.batch_windows));
    std::vector<std::vector<int32_t>> part(windows.begin() + w0, windows.begin() + w1);
    ASSIGN_OR_RETURN(SequenceBatch batch, SequenceBatch::Pack(part));
    ASSIGN_OR_RETURN(std::vector<double> nll, NextTokenNll(forward, batch));
    for (double v : nll) total += v;
    count += static_cast<int64_t>(nll.size());
  }
  PerplexityResult result;
  result.n_windows = static_cast<int64_t>(windows.size());
  result.n_predicted = count;
  result.mean_nll = total / static_cast<double>(count);
  result.perplexity = std::exp(result.mean_nll);
  return result;
}

}  // namespace compressd::engine
