#include "workers/engine/pipeline/eval_stream.h"

#include <chrono>
#include <utility>

#include "common/status_macros.h"
#include "common/util.h"

namespace compressd::engine {

absl::StatusOr<EvalStream> EvalStream::Create(const std::vector<EvalSet>& sets, int64_t hidden,
                                              const EmbedFn& embed) {
  EvalStream stream;
  for (size_t s = 0; s < sets.size(); ++s) {
    for (int i = 0; i < EvalBatches(sets[s]); ++i) {
      Batch b;
      b.set = static_cast<int>(s);
      ASSIGN_OR_RETURN(b.windows, SetBatch(sets[s], i));
      b.hidden.resize(b.windows.batch.tokens() * hidden);
      RETURN_IF_ERROR(embed(b.windows.batch, b.hidden.data()));
      stream.batches_.push_back(std::move(b));
    }
  }
  return stream;
}

uint64_t EvalStream::Bytes(const std::vector<EvalSet>& sets, int64_t hidden) {
  uint64_t tokens = 0;
  for (const EvalSet& set : sets) tokens += set.windows.n_windows * set.windows.window;
  return tokens * static_cast<uint64_t>(hidden) * sizeof(float);
}

absl::Status EvalStream::Advance(const LlamaForward& forward, const BlockWeights& w,
                                 BlockWorkspace* ws) {
  for (Batch& b : batches_) {
    RETURN_IF_ERROR(forward.RunBlock(w, b.windows.batch, b.hidden.data(), ws));
  }
  return absl::OkStatus();
}

void EvalStream::FinalNorm(const LlamaForward& forward) {
  if (normed_) return;
  for (Batch& b : batches_) {
    std::vector<float> normed(b.hidden.size());
    forward.FinalNorm(b.hidden.data(), b.windows.batch.tokens(), normed.data());
    b.hidden = std::move(normed);
  }
  normed_ = true;
}

absl::StatusOr<std::vector<PerplexityResult>> EvalStream::Perplexities(
    const LlamaForward& forward, const std::vector<EvalSet>& sets, EvalProgress* progress,
    EventSink& events, const CancelToken& cancel) {
  FinalNorm(forward);
  std::vector<PerplexitySum> sums(sets.size());
  for (const Batch& b : batches_) {
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
    ASSIGN_OR_RETURN(std::vector<double> nll,
                     NextTokenNllFromNormed(forward, b.windows.batch, b.hidden.data()));
    sums[b.set].Add(BatchPerplexity(nll, b.windows.n));
    EmitProgress(events, progress->stage, ++progress->done, progress->total,
                 BatchMessage(sets[b.set], b.windows, false));
  }
  std::vector<PerplexityResult> out;
  for (const PerplexitySum& s : sums) out.push_back(s.Result());
  return out;
}

absl::StatusOr<CompareResult> EvalStream::Compare(const LlamaForward& forward, EvalStream& dense,
                                                  EvalStream& other,
                                                  const std::vector<EvalSet>& sets, int set,
                                                  EvalProgress* progress, EventSink& events,
                                                  const CancelToken& cancel) {
  dense.FinalNorm(forward);
  other.FinalNorm(forward);
  CompareSum sum;
  for (size_t i = 0; i < dense.batches_.size(); ++i) {
    const Batch& p = dense.batches_[i];
    if (p.set != set) continue;
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
    ASSIGN_OR_RETURN(CompareResult r, CompareNormed(forward, forward, p.windows.batch,
                                                    p.hidden.data(), other.batches_[i].hidden.data()));
    sum.Add(r);
    EmitProgress(events, progress->stage, ++progress->done, progress->total,
                 BatchMessage(sets[p.set], p.windows, true));
  }
  return sum.Result();
}

absl::Status EvaluatingBlockStream::Embed(const SequenceBatch& batch, float* hidden) {
  return inner_.Embed(batch, hidden);
}

absl::Status EvaluatingBlockStream::Load(int block, BlockWeights* w) {
  RETURN_IF_ERROR(inner_.Load(block, w));
  const auto t = std::chrono::steady_clock::now();
  if (dense_ != nullptr) RETURN_IF_ERROR(dense_->Advance(forward_, *w, &ws_));
  seconds_ += SecondsSince(t);
  return absl::OkStatus();
}

absl::Status EvaluatingBlockStream::Done(int block, BlockWeights* w) {
  const auto t = std::chrono::steady_clock::now();
  if (compressed_ != nullptr) RETURN_IF_ERROR(compressed_->Advance(forward_, *w, &ws_));
  seconds_ += SecondsSince(t);
  return inner_.Done(block, w);
}

}  // namespace compressd::engine
