// Evaluation of a model that is never whole in memory (the block-stream path,
// job_plan.h): every evaluation window advances one block at a time. A
// stream holds the residual stream of all windows of all sets; Advance
// applies one block to each batch of windows (cut exactly as EvaluateSet
// cuts them); after the last block, the final norm and the LM head (whose
// rows the forward reads chunk by chunk from the mapped file) give each
// set's perplexity, and two streams (dense, compressed) give the KL and
// top-1 agreement. The results are the same numbers as EvaluateSet and
// CompareOnSet on the whole model, in a fraction of the memory: the windows'
// activations (tokens x hidden floats per stream) and one block.
//
// A dense stream advances through each block as it is loaded, a compressed
// one through the same block once it is compressed, so KL never needs two
// models. Not thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/nn/forward.h"
#include "workers/engine/pipeline/eval_sets.h"

namespace compressd::engine {

class EvalStream {
 public:
  using EmbedFn = std::function<absl::Status(const SequenceBatch& batch, float* hidden)>;

  // Every batch of every set, embedded with `embed`.
  static absl::StatusOr<EvalStream> Create(const std::vector<EvalSet>& sets, int64_t hidden,
                                           const EmbedFn& embed);

  // Applies block `w` to every batch (forward: blocks_on_demand); `ws` is
  // the forward workspace, shared by the streams of a job.
  absl::Status Advance(const LlamaForward& forward, const BlockWeights& w, BlockWorkspace* ws);

  // After the last block: the perplexity of each set, one progress step per
  // batch. The stream is final-normed on the first call.
  absl::StatusOr<std::vector<PerplexityResult>> Perplexities(const LlamaForward& forward,
                                                             const std::vector<EvalSet>& sets,
                                                             EvalProgress* progress,
                                                             EventSink& events,
                                                             const CancelToken& cancel);
  // KL(dense || other) and top-1 agreement on set `set`, as CompareOnSet.
  static absl::StatusOr<CompareResult> Compare(const LlamaForward& forward, EvalStream& dense,
                                               EvalStream& other, const std::vector<EvalSet>& sets,
                                               int set, EvalProgress* progress, EventSink& events,
                                               const CancelToken& cancel);

  // Bytes of residual stream it holds (the memory estimate's term).
  static uint64_t Bytes(const std::vector<EvalSet>& sets, int64_t hidden);

 private:
  struct Batch {
    int set = 0;
    EvalBatch windows;
    std::vector<float> hidden;  // [tokens, hidden]
  };
  void FinalNorm(const LlamaForward& forward);

  std::vector<Batch> batches_;
  bool normed_ = false;
};

// A job's block stream with evaluation on the side: `dense` (may be null)
// advances through each block as it is loaded (its original weights),
// `compressed` (may be null) through it once it is compressed, then the block
// goes on to `inner`. `forward` must outlive it.
class EvaluatingBlockStream : public BlockStream {
 public:
  EvaluatingBlockStream(BlockStream& inner, const LlamaForward& forward, EvalStream* dense,
                        EvalStream* compressed)
      : inner_(inner), forward_(forward), dense_(dense), compressed_(compressed) {}

  absl::Status Embed(const SequenceBatch& batch, float* hidden) override;
  absl::Status Load(int block, BlockWeights* w) override;
  absl::Status Peek(int block, BlockWeights* w) override { return inner_.Peek(block, w); }
  absl::Status Done(int block, BlockWeights* w) override;
  // Seconds spent advancing the evaluation streams.
  double seconds() const { return seconds_; }

 private:
  BlockStream& inner_;
  const LlamaForward& forward_;
  EvalStream* dense_;
  EvalStream* compressed_;
  BlockWorkspace ws_;  // one for both streams
  double seconds_ = 0;
};

}  // namespace compressd::engine
