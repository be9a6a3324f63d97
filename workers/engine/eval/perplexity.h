// Perplexity on a tokenized text with the shared protocol (windows.h):
// perplexity = exp(mean over every predicted token of every window of
// -log softmax(logits)[next token]). Windows are run `batch_windows` at a
// time; the LM head is streamed over vocabulary chunks with an online
// log-sum-exp (Backend::SoftmaxStatsUpdate), so the peak memory is the model
// plus one batch's block activations plus one [batch tokens, vocab_chunk]
// logits chunk. Stateless; not thread-safe in the sense that `forward`'s
// backend is not.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/eval/windows.h"
#include "workers/engine/nn/forward.h"

namespace compressd::engine {

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;      // nats per predicted token
  int64_t n_windows = 0;
  int64_t n_predicted = 0;  // n_windows * (window - 1)
};

absl::StatusOr<PerplexityResult> Perplexity(const LlamaForward& forward,
                                            const std::vector<int32_t>& tokens,
                                            const WindowOptions& options);

// Negative log-likelihood of each next token of one batch: nll[r] for the rows
// r that have a next token in their sequence (all rows but each sequence's
// last, in row order). Shared by Perplexity and the tests.
absl::StatusOr<std::vector<double>> NextTokenNll(const LlamaForward& forward,
                                                 const SequenceBatch& batch);
// The same from the batch's final-normed hidden states [T, hidden] (the LM
// head of `forward` applied chunk by chunk): for evaluation that advances
// the windows block by block (pipeline/eval_stream.h).
absl::StatusOr<std::vector<double>> NextTokenNllFromNormed(const LlamaForward& forward,
                                                           const SequenceBatch& batch,
                                                           const float* normed);
// Perplexity of one batch of `n_windows` windows from its NLLs.
PerplexityResult BatchPerplexity(const std::vector<double>& nll, int64_t n_windows);

}  // namespace compressd::engine
