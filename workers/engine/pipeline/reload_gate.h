// The post-export reload gate (docs/families.md, "Outputs"): after writing
// its output, a job re-opens the files with the loader a user of the worker
// would use (OpenModelStream: our safetensors, GPTQ and GGUF readers), runs a few
// windows through the reloaded model block by block, and compares their
// perplexity with the in-memory compressed model's on the same windows. A
// difference beyond the format's tolerance fails the job with INTERNAL
// instead of shipping an artifact that is not the model it reports; the
// figure goes into the summary (export.reload_check).
//
// Windows: the first two calibration samples (at most 256 tokens each), else
// the first two windows of the first evaluation set, else two fixed
// pseudo-random token windows (logits still disagree on a broken artifact).
// Tolerances on perplexity, relative: 1e-4 for an F32 safetensors output
// (the same bits), 1e-2 for BF16/F16 safetensors (rounded weights), 2e-2 for
// GGUF (re-encoded to ggml types; 1.0 when the recipe asks for Q3_K tensors,
// and for Q2_K only a non-finite perplexity fails: re-encoding onto a 3- or
// 2-bit grid moves perplexity by tens of percent or many times), 1e-2 for
// GPTQ (float16 scales and dense tensors, read back by gguf/gptq_stream.h)
// and spqr (its modules decode exactly, gguf/spqr_stream.h; the rest float16);
// measured on SmolLM2-135M in docs/families.md. A format without a reader (ReloadGate::skipped) is
// reported as not checked. Not thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/recipe_spec.h"
#include "nlohmann/json.hpp"
#include "workers/engine/calib/calib_data.h"
#include "workers/engine/calib/calibrated_compress.h"
#include "workers/engine/eval/perplexity.h"
#include "workers/engine/model/model_stream.h"
#include "workers/engine/pipeline/eval_sets.h"
#include "workers/engine/pipeline/eval_stream.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine {

struct ReloadGate {
  EvalSet set;             // the windows
  double tolerance = 0;    // on |ppl_reloaded / ppl_expected - 1|
  std::string path;        // the output as it is opened: the directory, or model.gguf
  bool gguf = false;
  std::string skipped;     // non-empty: why the output cannot be re-opened
};

// A block-by-block forward over `source` (blocks_on_demand): `holder` gets
// its config and final norm, the LM head rows are read from the stream in
// vocabulary chunks and released. `holder` and `backend` must outlive it.
absl::StatusOr<LlamaForward> StreamForward(const ModelStream& source, LlamaModel* holder,
                                           Backend* backend);

// The gate of a job writing `spec`'s format to `out_dir`, for a model of
// `vocab` tokens.
ReloadGate PlanReloadGate(const RecipeSpec& spec, const CalibrationSet* calibration,
                          const std::vector<EvalSet>& sets, int vocab, const std::string& out_dir);

// The perplexity of the output at gate.path on gate.set, read block by block.
absl::StatusOr<PerplexityResult> ReloadedPerplexity(const ReloadGate& gate,
                                                    const std::string& device, int threads,
                                                    EventSink& events, const CancelToken& cancel);

// Compares the two; INTERNAL (naming both figures and the path) beyond the
// tolerance, else the summary's JSON (also logged).
absl::StatusOr<nlohmann::json> CompareReload(const ReloadGate& gate,
                                             const PerplexityResult& expected,
                                             const PerplexityResult& reloaded, EventSink& events);

// The whole gate for a job that holds its compressed model (`model`).
absl::StatusOr<nlohmann::json> VerifyModelExport(const LlamaModel& model, const ReloadGate& gate,
                                                 const std::string& device, int threads,
                                                 EventSink& events, const CancelToken& cancel);

// The gate for a block-at-a-time job: blocks() wraps `inner`, advancing the
// gate's windows through each block once it is compressed (the expected
// side); Verify() after the output is finished.
class StreamedExportCheck {
 public:
  static absl::StatusOr<std::unique_ptr<StreamedExportCheck>> Create(
      const ModelStream& source, ReloadGate gate, const std::string& device, int threads,
      BlockStream& inner);
  BlockStream& blocks() { return *blocks_; }
  absl::StatusOr<nlohmann::json> Verify(EventSink& events, const CancelToken& cancel);

 private:
  StreamedExportCheck() = default;
  ReloadGate gate_;
  std::string device_;
  int threads_ = 1;
  LlamaModel holder_;  // config and final norm
  std::unique_ptr<Backend> backend_;
  std::optional<LlamaForward> forward_;
  std::optional<EvalStream> stream_;
  std::unique_ptr<EvaluatingBlockStream> evaluating_;  // null when skipped
  BlockStream* blocks_ = nullptr;
};

}  // namespace compressd::engine
