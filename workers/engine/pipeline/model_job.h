// The model job path (job_plan.h JobPath::kModel): the whole model in memory
// as a LlamaModel (model/model_loader.h: a GGUF file, dequantized, or an HF
// safetensors directory), so it can be evaluated as well as compressed.
//
//   load      the model, the tokenizer, the evaluation texts and the
//             calibration set (when the plan needs them), the targets checked
//             (model_inputs.h);
//   evaluate  dense perplexity on every set ("evaluate dense");
//   compress  the plan's compression: the stages on each target without
//             calibration (calib/calibrated_compress.h CompressUncalibrated),
//             the sequential calibration pipeline (CompressCalibrated), or an
//             EvoPress search (evopress_stage.h);
//   evaluate  perplexity of the compressed model on every set, and KL(dense ||
//             compressed) + top-1 agreement on the first set when asked;
//   export    the output format (model_export.h).
// A recipe with no stages stops after the dense evaluation and writes only
// summary.json to the output directory.
//
// Events: Progress "load", "evaluate dense" / "evaluate" (batch i of N), the
// compression's own, "export"; MetricPoint "perplexity" {dataset, model:
// dense|compressed}, "kl" and "top1" {dataset}, per-layer metrics of the
// compression. Summary (summary.h): every section but the tensor path's.
// Memory: the model in float32, plus a copy of each compressed tensor while
// the dense model is still needed (KL), plus one evaluation batch's
// activations or one block's calibration buffers.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/recipe_spec.h"
#include "workers/engine/pipeline/job_plan.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine {

absl::StatusOr<std::string> RunModelJob(const JobPlan& plan, const RecipeSpec& recipe,
                                        const std::string& out_dir, const RunOptions& options,
                                        EventSink& events, CancelToken& cancel);

}  // namespace compressd::engine
