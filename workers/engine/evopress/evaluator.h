// Fitness evaluation of EvoPress candidates (fitness.h) on one selection
// step's token windows, and the model of a configuration.
//
// A candidate's model is the dense model with each unit replaced by its
// level: sparsity / bits: the layer's weight from the levels database
// (levels_db.h); drop: the sub-block skipped (LlamaForward::RunBlockParts;
// StitchModel instead zeroes its output projection, which computes the same
// values). The evaluator keeps one working model and, per candidate, patches
// only the units whose level differs from the previous candidate.
//
// SetWindows packs the step's windows into micro-batches of whole windows (at
// most micro_batch_tokens tokens, at least one window) and runs the dense
// model once over them for the dense targets.
//
// Prefix reuse (an addition to the paper): an offspring differs from its
// parent in a few units, so its hidden states entering every block before
// the first block it changes equal the parent's, bit for bit (same weights,
// same micro-batches, same kernels). Evaluate(configs, base) runs `base` (the
// parent) first, keeping its hidden states at the entry of each block some
// candidate first differs at ([T, hidden] floats per such block), then runs
// each candidate from its first changed block. The fitness values are
// identical to full evaluation (prefix_reuse false); the saving is the blocks
// before the first change (about a third of the block compute for one
// switch, whose two units are spread uniformly over the depth).
//
// When the parent is not scored (it is not in `configs`: every selection step
// but the last), it runs only up to the last block a candidate starts at, and
// not at all when every candidate differs from it in block 0.
//
// The dense logits of the step (fitness kl, top_k 0) are computed once in
// SetWindows and kept, within options.dense_logits_bytes, instead of once per
// candidate (fitness.h): the same values, one LM head less per candidate.
//
// Cost of one candidate on T tokens: (blocks run) x (block cost) + the LM
// head and fitness (fitness.h). Memory: the working model's patched tensors
// (shared with the database cache), the dense targets (with the kept logits,
// up to options.dense_logits_bytes), the reuse cache.
// Not thread-safe (one backend).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/evopress/fitness.h"
#include "workers/engine/evopress/levels_db.h"
#include "workers/engine/evopress/search_space.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/nn/forward.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine::evopress {

struct EvaluatorOptions {
  FitnessSpec fitness;
  int64_t micro_batch_tokens = 2048;
  bool prefix_reuse = true;
  // kl / top_k 0: at most this many bytes of the step's dense logits are kept
  // (MakeDenseTargets' keep_logits, micro-batch by micro-batch) instead of
  // being recomputed for every candidate; 0 keeps none.
  int64_t dense_logits_bytes = int64_t{1} << 30;
};

struct EvaluatorStats {
  int64_t candidates = 0;          // fitness evaluations
  int64_t tokens = 0;              // tokens of those evaluations
  int64_t block_tokens = 0;        // sum over evaluations of blocks run x tokens
  int64_t block_tokens_saved = 0;  // blocks skipped by prefix reuse x tokens
};

class CandidateEvaluator {
 public:
  // `dense`, `backend` and `db` (null for drop mode) must outlive the evaluator.
  // INVALID_ARGUMENT for a bad model or micro_batch_tokens < 1.
  static absl::StatusOr<std::unique_ptr<CandidateEvaluator>> Create(const engine::LlamaModel& dense,
                                                                    engine::Backend* backend,
                                                                    const SearchSpace& space,
                                                                    LevelsDb* db,
                                                                    EvaluatorOptions options);

  // The step's windows (each non-empty); runs the dense model over them.
  absl::Status SetWindows(const std::vector<std::vector<int32_t>>& windows);
  int64_t tokens() const;

  // The fitness of each configuration on the current windows (lower is
  // better). With `base` (may also appear in `configs`) and prefix_reuse,
  // see the file comment; `base_fitness`, when not null, receives base's.
  // CANCELLED once `cancel` is set (checked between candidates).
  absl::StatusOr<std::vector<double>> Evaluate(const std::vector<Config>& configs,
                                               const Config* base, const CancelToken& cancel,
                                               double* base_fitness = nullptr);

  const EvaluatorStats& stats() const { return stats_; }

 private:
  using BlockCache = std::map<int, std::vector<float>>;  // block -> hidden [T, hidden]

  CandidateEvaluator(const engine::LlamaModel& dense, const SearchSpace& space, LevelsDb* db,
                     EvaluatorOptions options)
      : dense_(dense),
        space_(space),
        db_(db),
        options_(options),
        work_(dense),
        parts_(dense.config.n_layers) {}
  // One run of the working model: blocks [first, n) from `from` (first > 0)
  // or from the embedding; the hidden states entering the blocks of
  // `capture` are stored there.
  struct RunPlan {
    int first = 0;
    const BlockCache* from = nullptr;
    BlockCache* capture = nullptr;
    bool score = true;  // false: no fitness; stops after the last captured block
  };
  absl::Status Apply(const Config& config);
  absl::StatusOr<double> Run(const RunPlan& plan);
  int FirstChangedBlock(const Config& a, const Config& b) const;

  const engine::LlamaModel& dense_;
  const SearchSpace space_;
  LevelsDb* db_;
  const EvaluatorOptions options_;
  engine::LlamaModel work_;
  std::vector<engine::BlockParts> parts_;
  Config work_config_;  // empty until the first Apply
  std::unique_ptr<engine::LlamaForward> dense_fwd_, work_fwd_;
  std::vector<engine::SequenceBatch> micro_;
  std::vector<int64_t> micro_row_;
  std::vector<DenseTargets> targets_;
  int64_t tokens_ = 0;
  EvaluatorStats stats_;
};

// The dense model with every unit at its level in `config`, sharing the
// database's tensors; for bits mode `quantized` (may be null) receives each
// unit's codes by HF tensor name. Drop mode: a dropped half's o_proj /
// down_proj becomes zeros.
absl::StatusOr<engine::LlamaModel> StitchModel(
    const engine::LlamaModel& dense, const SearchSpace& space, LevelsDb* db, const Config& config,
    std::map<std::string, engine::QuantizedTensor>* quantized);

}  // namespace compressd::engine::evopress
