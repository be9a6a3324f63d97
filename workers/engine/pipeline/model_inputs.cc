#include "workers/engine/pipeline/model_inputs.h"

#include <algorithm>
#include <filesystem>
#include <thread>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/model/model_loader.h"

namespace compressd::engine {

namespace fs = std::filesystem;
using nlohmann::json;

int EvaluationThreads(const v1::Recipe& recipe, const RunOptions& options) {
  if (recipe.evaluation().threads() > 0) return recipe.evaluation().threads();
  if (options.threads > 0) return options.threads;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int CalibrationThreads(const v1::Recipe& recipe, const RunOptions& options) {
  return recipe.calibration().threads() > 0 ? recipe.calibration().threads()
                                            : EvaluationThreads(recipe, options);
}

json ModelSummaryJson(engine::LlamaModel& model, const ModelInput& input) {
  return ModelSummaryJson(model.config, engine::NamedShapes(&model), engine::LmHeadIsTied(model),
                          input);
}

json ModelSummaryJson(const engine::LlamaConfig& c, const std::vector<NamedShape>& tensors,
                      bool tied, const ModelInput& input) {
  uint64_t params = 0;
  for (const engine::NamedShape& t : tensors) {
    uint64_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    params += n;
  }
  return {{"input_format", input.gguf ? "gguf" : "hf_safetensors"},
          {"file", fs::path(input.path).filename().string()},
          {"model_type", c.model_type},
          {"layers", c.n_layers},
          {"hidden", c.hidden},
          {"intermediate", c.intermediate},
          {"heads", c.n_heads},
          {"kv_heads", c.n_kv_heads},
          {"vocab", c.vocab},
          {"tied_embeddings", tied},
          {"parameters", params}};
}

absl::Status LoadModelInputs(const JobPlan& plan, const RecipeSpec& spec, const RunOptions& options,
                             const LoadWhat& what, EventSink& events, ModelInputs* inputs) {
  ASSIGN_OR_RETURN(inputs->model, engine::LoadModel(plan.input.path));
  RETURN_IF_ERROR(LoadTextInputs(plan, spec, options, what, events, inputs));
  if (what.targets && !spec.recipe.stages().empty()) {
    ASSIGN_OR_RETURN(inputs->targets, SelectModelTargets(inputs->model, spec));
  }
  return absl::OkStatus();
}

absl::Status LoadTextInputs(const JobPlan& plan, const RecipeSpec& spec, const RunOptions& options,
                            const LoadWhat& what, EventSink& events, ModelInputs* inputs) {
  const v1::Recipe& recipe = spec.recipe;
  const bool sets = what.eval_sets && plan.evaluate;
  const bool calibration = what.calibration && spec.calibrated;
  if (sets || calibration) {
    ASSIGN_OR_RETURN(engine::Tokenizer tokenizer,
                     LoadModelTokenizer(plan.input.path, plan.input.gguf));
    if (sets) {
      ASSIGN_OR_RETURN(inputs->sets, LoadEvalSets(recipe.evaluation(), tokenizer, options));
    }
    if (calibration) {
      ASSIGN_OR_RETURN(inputs->calibration,
                       LoadCalibrationSet(recipe.calibration(), tokenizer, options));
      const CalibrationSet& c = *inputs->calibration;
      EmitLog(events, "info",
              absl::StrFormat("calibration set %s: %d windows of %d tokens from %s (%d files, "
                              "%d tokens, seed %d)",
                              c.name, c.sequences.size(), recipe.calibration().seq_len(), c.source,
                              c.files, c.text_tokens, recipe.calibration().seed()));
    }
  }
  return absl::OkStatus();
}

}  // namespace compressd::engine
