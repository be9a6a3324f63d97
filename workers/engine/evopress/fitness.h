// EvoPress fitness of a candidate model on a batch of token windows, over
// the positions that predict a token (every row of a window but its last),
// lower is better:
//   kl (top_k 0): mean KL(dense || candidate) of the next-token
//       distributions, exact: the dense model's final normed hidden states
//       are kept ([T, hidden], small) and both LM heads are streamed chunk by
//       chunk with an online log-sum-exp (Backend::KlStatsUpdate), as
//       eval/model_compare.h does; or the dense logits are kept whole
//       (T * vocab floats) and only the candidate's LM head is computed;
//   kl (top_k K): KL between the two distributions coarsened to the dense
//       model's top-K tokens plus one "rest" bucket:
//         sum_{i in K} p_i (log p_i - log q_i) + p_rest (log p_rest - log q_rest),
//       p_rest = 1 - sum_K p_i, q_rest = 1 - sum_K q_i (a lower bound of the
//       full KL); the dense side is kept as K ids and log-probabilities plus
//       log p_rest per position (8K + 4 bytes), the candidate's full
//       log-sum-exp is still streamed;
//   ppl: perplexity exp(mean negative log-likelihood of the next token).
// Sums are float64 in row order, so a fitness is a deterministic function of
// the batch and the models.
//
// Cost per batch of T tokens: the LM head (T * vocab * hidden multiply-adds)
// once for the candidate, and again for the dense model with kl / top_k 0;
// O(T * vocab) for the softmax statistics; O(T * vocab * log K) for the
// dense top-K. Stateless.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/nn/forward.h"

namespace compressd::engine::evopress {

enum class FitnessKind { kKl, kPpl };

struct FitnessSpec {
  FitnessKind kind = FitnessKind::kKl;
  int top_k = 0;  // kl: 0 full distribution, else top-K + rest
};

// The dense model's side of one batch (rows of the batch).
struct DenseTargets {
  std::vector<float> normed;     // kl, top_k 0: final normed hidden [T, hidden]
  std::vector<float> logits;     // kl, top_k 0, when kept: the dense LM head's output, [T, n]
                                 // per vocabulary chunk, chunk after chunk (T * vocab)
  std::vector<int32_t> top_ids;  // kl, top_k K: [T, K]
  std::vector<float> top_logp;   // [T, K] log-probabilities
  std::vector<float> rest_logp;  // [T] log(1 - sum of the top-K probabilities); -inf when 0
};

struct FitnessSums {
  double sum = 0;  // of KL or of NLL over the positions
  int64_t count = 0;
};

// The dense targets of `batch` from the dense model's final normed hidden
// states `normed` [T, hidden] (moved in for kl / top_k 0). With kl / top_k 0
// and `keep_logits`, the dense logits are computed once here (T * vocab
// floats) instead of once per ScoreBatch: the same values, so the same sums.
absl::StatusOr<DenseTargets> MakeDenseTargets(const engine::LlamaForward& dense,
                                              const engine::SequenceBatch& batch,
                                              std::vector<float> normed, const FitnessSpec& spec,
                                              bool keep_logits = false);

// Adds the terms of `batch`, row after row, to *sums, for the candidate's
// final normed hidden states `normed` [T, hidden]: the micro-batches of a
// step, scored in order, give the sums of one pass over all their rows.
// INVALID_ARGUMENT when the targets do not fit the batch.
absl::Status ScoreBatch(const engine::LlamaForward& dense, const engine::LlamaForward& candidate,
                        const engine::SequenceBatch& batch, const float* normed,
                        const DenseTargets& targets, const FitnessSpec& spec, FitnessSums* sums);

// Mean KL (nats), or perplexity; +inf for no positions.
double FitnessValue(const FitnessSpec& spec, const FitnessSums& sums);

}  // namespace compressd::engine::evopress
