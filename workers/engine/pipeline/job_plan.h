// A job planned once from its typed recipe and its model input: which path
// runs it and which steps it takes. RunJob (job.h) plans, then runs the plan.
//
//   tensor-by-tensor (tensor_job.h): HF safetensors in and out, magnitude
//     stages only, no calibration, overrides or evaluation: each target is
//     pruned in its own dtype and shard, everything else stays byte-identical;
//   block stream (model_job.h): HF safetensors or GGUF in, a calibrated
//     recipe (SparseGPT / GPTQ / Wanda, no EvoPress) or an uncalibrated one
//     (magnitude, RTN, N:M) whose targets are all in the decoder blocks, HF,
//     GPTQ or GGUF out: the model is never in memory, only the block at hand
//     (model/model_stream.h, hf_block_stream.h), and evaluation windows
//     advance block by block with it (eval_stream.h), so memory is bounded by
//     one block plus the calibration and evaluation activations; and a model
//     that is only evaluated, the same way;
//   model (model_job.h): the whole model in memory as a LlamaModel, for
//     every other recipe (EvoPress; uncalibrated stages on the LM head or
//     embeddings) and for RunOptions::whole_model: load, [evaluate dense],
//     compress, [evaluate], export.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/recipe_spec.h"

namespace compressd::engine {

struct ModelInput {
  std::string path;  // the .gguf file, or the HF model directory
  bool gguf = false;
};

// A .gguf file, a directory holding one .gguf file and no safetensors (how
// the worker lays out a GGUF upload), or an HF safetensors directory.
// NOT_FOUND for a missing path, INVALID_ARGUMENT for anything else.
absl::StatusOr<ModelInput> ResolveModelInput(const std::string& model_path);

enum class JobPath { kTensorByTensor, kBlockStream, kModel };
enum class Compression { kNone, kUncalibrated, kCalibrated, kEvoPress };

struct JobPlan {
  ModelInput input;
  JobPath path = JobPath::kModel;
  Compression compression = Compression::kNone;
  bool evaluate = false;        // the recipe has evaluation sets
  bool evaluate_dense = false;  // ... and the dense model is evaluated too
  bool kl = false;              // KL(dense || compressed) on the first set
  bool tokenizer = false;       // evaluation or calibration needs the model's tokenizer
  OutputFormat format = OutputFormat::kHfSafetensors;
};

// For an uncalibrated recipe it reads the model's config and tensor headers
// (which targets it has); otherwise nothing but the recipe.
JobPlan PlanJob(const RecipeSpec& recipe, const ModelInput& input);

}  // namespace compressd::engine
