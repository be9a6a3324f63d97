// Evaluation sets of a recipe (evaluation.perplexity) and their evaluation on
// a model with the shared protocol (eval/windows.h): each set's text is read
// from a local path or a fetched dataset file, tokenized whole with the
// model's tokenizer (no BOS/EOS added, special-token text not parsed), and
// its first `windows` windows of `window` tokens are kept.
//
// Evaluation runs the windows a batch at a time (Perplexity / CompareModels
// on each batch, then the NLL sums and KL sums are combined), so that a job
// reports progress and honours cancellation between batches.
// Stateless functions; not thread-safe in the sense that a forward's backend is not.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "compressd/v1/recipe.pb.h"
#include "workers/engine/eval/model_compare.h"
#include "workers/engine/eval/perplexity.h"
#include "workers/engine/nn/forward.h"
#include "workers/engine/runtime/run_context.h"
#include "workers/engine/tokenizer/tokenizer.h"

namespace compressd::engine {

struct EvalSet {
  std::string name;    // metric label
  std::string source;  // the path, or "<dataset_id>/<file>"
  engine::WindowOptions windows;
  std::vector<int32_t> tokens;  // the first window * windows tokens of the text
  int64_t text_tokens = 0;      // tokens of the whole text
};

// The tokenizer of a model: the GGUF-embedded one for a .gguf file, else
// tokenizer.json in the HF model directory (INVALID_ARGUMENT naming the
// missing file).
// The bytes of a local text file: NOT_FOUND naming `field` and the path when
// it is not a regular file, RESOURCE_EXHAUSTED above 1 GiB.
absl::StatusOr<std::string> ReadTextFile(const std::string& path, const std::string& field);

absl::StatusOr<engine::Tokenizer> LoadModelTokenizer(const std::string& model_path, bool gguf);

// Reads and tokenizes every set. INVALID_ARGUMENT naming the field for a
// local path when !options.allow_local_paths, a dataset source without a
// resolver, and for a text shorter than window * windows tokens (with both
// counts); NOT_FOUND for a missing file.
absl::StatusOr<std::vector<EvalSet>> LoadEvalSets(const v1::Evaluation& evaluation,
                                                  const engine::Tokenizer& tokenizer,
                                                  const RunOptions& options);

// Counts evaluation batches for Progress events: `stage` i of `total`.
struct EvalProgress {
  std::string stage;
  int total = 0;
  int done = 0;
};
// Forward passes (batches) that EvaluateSet / CompareOnSet take for `set`.
int EvalBatches(const EvalSet& set);

// Batch `index` of a set as EvaluateSet runs it: windows [first, first + n),
// packed; INVALID_ARGUMENT as CutWindows.
struct EvalBatch {
  int64_t first = 0, n = 0;
  engine::SequenceBatch batch;
};
absl::StatusOr<EvalBatch> SetBatch(const EvalSet& set, int index);

// The per-batch results of a set combined as EvaluateSet / CompareOnSet do.
class PerplexitySum {
 public:
  void Add(const engine::PerplexityResult& r);
  engine::PerplexityResult Result() const;

 private:
  double nll_sum_ = 0;
  engine::PerplexityResult total_;
};
class CompareSum {
 public:
  void Add(const engine::CompareResult& r);
  engine::CompareResult Result() const;

 private:
  double kl_sum_ = 0, agree_sum_ = 0;
  engine::CompareResult total_;
};
// "<set>: windows 3/8" (and "KL windows"): the progress message after a batch.
std::string BatchMessage(const EvalSet& set, const EvalBatch& b, bool kl);

// Perplexity of `forward` on the set's windows; one progress step per batch.
// CANCELLED once `cancel` is set.
absl::StatusOr<engine::PerplexityResult> EvaluateSet(const engine::LlamaForward& forward,
                                                     const EvalSet& set, EvalProgress* progress,
                                                     EventSink& events, const CancelToken& cancel);

// Mean KL(dense || other) and top-1 agreement on the set's windows.
absl::StatusOr<engine::CompareResult> CompareOnSet(const engine::LlamaForward& dense,
                                                   const engine::LlamaForward& other,
                                                   const EvalSet& set, EvalProgress* progress,
                                                   EventSink& events, const CancelToken& cancel);

}  // namespace compressd::engine
