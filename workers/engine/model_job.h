// The model-engine path of a job: the whole model in memory as a LlamaModel
// (model_loader.h: a GGUF file, dequantized, or an HF safetensors directory),
// so it can be evaluated as well as compressed. Taken for GGUF input and for
// any recipe with evaluation sets (job_runner.h routes).
//
//   load      LoadModel, the tokenizer and the evaluation texts (when asked),
//             the targets checked;
//   evaluate  dense perplexity on every set ("evaluate dense");
//   prune     the magnitude stages on each target (model_prune.h);
//   evaluate  perplexity of the compressed model on every set, and KL(dense ||
//             compressed) + top-1 agreement on the first set when asked;
//   export    an HF safetensors model in F32 (export/llama_export.h), plus the
//             tokenizer files of an HF input directory.
// A recipe with no stages stops after the dense evaluation and writes only
// summary.json to the output directory.
//
// Events: Progress "load", "evaluate dense" / "evaluate" (batch i of N),
// "prune" (i of N), "export"; MetricPoint "perplexity" {dataset, model:
// dense|compressed}, "kl" and "top1" {dataset}, "sparsity" and "seconds"
// {layer}. The JSON summary has the evaluation results, per-layer sparsity,
// totals, wall time split into load / evaluate / prune / export, and the
// process's peak RSS. Memory: the model in float32, plus a copy of each
// pruned tensor while the dense model is still needed (KL), plus one
// evaluation batch's activations.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "compressd/v1/recipe.pb.h"
#include "workers/engine/checkpoint.h"
#include "workers/engine/fanout.h"
#include "workers/engine/run_context.h"

namespace compressd {

// `model_path` is a .gguf file (gguf = true) or an HF model directory;
// `recipe` has its defaults applied and is valid.
absl::StatusOr<std::string> RunModelRecipe(const std::string& model_path, bool gguf,
                                           const v1::Recipe& recipe, const std::string& out_dir,
                                           const RunOptions& options, EventSink& events,
                                           CancelToken& cancel);

// A part of a job (fanout.h) computed on this worker for the job's task,
// which may run on another worker. What the part needs (the model, the
// calibration set, the stage's session) is built once by Create from the
// job's recipe and model and kept for the job's next parts. Only evopress
// stages fan out. Not thread-safe.
class ModelPartRunner {
 public:
  virtual ~ModelPartRunner() = default;
  // `model_path` is a .gguf file (gguf = true) or an HF model directory;
  // `recipe` has its defaults applied and is valid. INVALID_ARGUMENT for a
  // recipe without a stage that fans out.
  static absl::StatusOr<std::unique_ptr<ModelPartRunner>> Create(
      const std::string& model_path, bool gguf, const v1::Recipe& recipe,
      const RunOptions& options, EventSink& events, const CancelToken& cancel);
  // The part's result. `store`: where the levels database lives, the same
  // store as the job's own RunOptions::levels_db (the worker passes the
  // model's shared checkpoints, under this part's lease).
  virtual absl::StatusOr<std::string> Run(const WorkPart& part, CheckpointStore* store,
                                          EventSink& events, const CancelToken& cancel) = 0;
};

}  // namespace compressd
