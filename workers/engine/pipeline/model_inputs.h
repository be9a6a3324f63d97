// What a model job (model_job.h) or a part runner (part_runner.cc) loads
// before computing: the model, its tokenizer's view of the evaluation texts
// and the calibration set, and the recipe's targets (checked before any long
// step), plus the compute thread counts the recipe and the worker ask for.
#pragma once

#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "common/recipe_spec.h"
#include "nlohmann/json.hpp"
#include "workers/engine/calib/calib_data.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/pipeline/eval_sets.h"
#include "workers/engine/pipeline/job_plan.h"
#include "workers/engine/pipeline/targets.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine {

struct ModelInputs {
  engine::LlamaModel model;
  std::vector<EvalSet> sets;                  // when the plan evaluates
  std::optional<CalibrationSet> calibration;  // when the recipe is calibrated
  std::vector<ModelTarget> targets;           // when the recipe has stages
};

struct LoadWhat {
  bool eval_sets = true;
  bool calibration = true;
  bool targets = true;
};

// Loads what `what` asks for of what the plan needs; errors as RunJob's.
absl::Status LoadModelInputs(const JobPlan& plan, const RecipeSpec& recipe,
                             const RunOptions& options, const LoadWhat& what, EventSink& events,
                             ModelInputs* inputs);

// Like LoadModelInputs without the model: the evaluation sets and the
// calibration set (through the model's tokenizer), for a job that loads the
// model block by block.
absl::Status LoadTextInputs(const JobPlan& plan, const RecipeSpec& recipe,
                            const RunOptions& options, const LoadWhat& what, EventSink& events,
                            ModelInputs* inputs);

// The "model" section of the summary: input format, shape, parameters.
nlohmann::json ModelSummaryJson(engine::LlamaModel& model, const ModelInput& input);
// The same from the config and the tensors' shapes (tied: no lm_head of its own).
nlohmann::json ModelSummaryJson(const engine::LlamaConfig& config,
                                const std::vector<NamedShape>& tensors, bool tied,
                                const ModelInput& input);

// Threads for evaluation: evaluation.threads, else RunOptions::threads, else
// the hardware concurrency.
int EvaluationThreads(const v1::Recipe& recipe, const RunOptions& options);
// Threads for calibration: calibration.threads, else EvaluationThreads.
int CalibrationThreads(const v1::Recipe& recipe, const RunOptions& options);

}  // namespace compressd::engine
