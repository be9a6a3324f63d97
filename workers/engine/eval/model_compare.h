// Compares a model against a reference (dense) model on the same tokens:
// mean KL(dense || other) of the next-token distributions and the top-1
// agreement (fraction of positions where both argmaxes agree), over the
// positions that predict a token of each window (the perplexity positions of
// windows.h). Both LM heads are streamed chunk by chunk with an online
// log-sum-exp (Backend::KlStatsUpdate): per row,
//   KL = sum_v p_v (log p_v - log q_v) = E_p[a - b] - lse(a) + lse(b)
// for dense logits a and other logits b. Memory: both models, one batch's
// block activations and two logits chunks. Stateless.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/eval/windows.h"
#include "workers/engine/nn/forward.h"

namespace compressd::engine {

struct CompareResult {
  double mean_kl = 0;          // nats
  double top1_agreement = 0;   // in [0, 1]
  int64_t n_positions = 0;
};

// INVALID_ARGUMENT when the two models' vocabularies or hidden sizes differ,
// or the windows cannot be cut (windows.h). Both forwards must share a backend
// kind (host memory).
absl::StatusOr<CompareResult> CompareModels(const LlamaForward& dense, const LlamaForward& other,
                                            const std::vector<int32_t>& tokens,
                                            const WindowOptions& options);
// One batch from both models' final-normed hidden states [T, hidden] (for
// evaluation that advances the windows block by block): the same as
// CompareModels on that batch alone.
absl::StatusOr<CompareResult> CompareNormed(const LlamaForward& dense, const LlamaForward& other,
                                            const SequenceBatch& batch, const float* hp,
                                            const float* hq);

}  // namespace compressd::engine
