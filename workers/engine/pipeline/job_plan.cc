#include "workers/engine/pipeline/job_plan.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/model/model_loader.h"
#include "workers/engine/pipeline/targets.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;

bool HasGgufMagic(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string(magic, 4) == "GGUF";
}

// Whether every target of `spec` in the model at `input` is a decoder-block
// tensor (read from its config and tensor headers only); false when that
// cannot be told, so the whole-model path reports the problem.
bool TargetsInBlocks(const ModelInput& input, const RecipeSpec& spec) {
  absl::StatusOr<std::unique_ptr<ModelStream>> source = OpenModelStream(input.path, input.gguf);
  if (!source.ok()) return false;
  absl::StatusOr<std::vector<ModelTarget>> targets =
      SelectTargets(ConfigShapes((*source)->config()), spec);
  if (!targets.ok()) return false;
  for (const ModelTarget& t : *targets) {
    if (!absl::StartsWith(t.tensor, "model.layers.")) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<ModelInput> ResolveModelInput(const std::string& model_path) {
  std::error_code ec;
  if (!fs::exists(model_path, ec)) {
    return absl::NotFoundError(absl::StrCat(model_path, ": no such file or directory"));
  }
  if (fs::is_regular_file(model_path, ec)) {
    if (absl::EndsWith(model_path, ".gguf") || HasGgufMagic(model_path)) {
      return ModelInput{model_path, true};
    }
    return absl::InvalidArgumentError(absl::StrCat(
        model_path, ": expected a .gguf file or a model directory (config.json + *.safetensors)"));
  }
  std::vector<std::string> ggufs;
  bool has_safetensors = false;
  for (const fs::directory_entry& e : fs::directory_iterator(model_path, ec)) {
    const std::string name = e.path().filename().string();
    if (absl::EndsWith(name, ".gguf")) ggufs.push_back(e.path().string());
    has_safetensors |= absl::EndsWith(name, ".safetensors");
  }
  if (has_safetensors || ggufs.empty()) return ModelInput{model_path, false};
  if (ggufs.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        model_path, ": holds ", ggufs.size(), " .gguf files; expected one (or name the file)"));
  }
  return ModelInput{ggufs.front(), true};
}

JobPlan PlanJob(const RecipeSpec& spec, const ModelInput& input) {
  const v1::Recipe& recipe = spec.recipe;
  JobPlan plan;
  plan.input = input;
  plan.format = spec.format;
  plan.evaluate = !recipe.evaluation().perplexity().empty();
  const bool has_stages = !recipe.stages().empty();
  plan.evaluate_dense = plan.evaluate && !(recipe.evaluation().skip_dense() && has_stages);
  plan.kl = plan.evaluate && has_stages && recipe.evaluation().kl();
  plan.tokenizer = plan.evaluate || spec.calibrated;
  if (!has_stages) {
    plan.compression = Compression::kNone;
  } else if (!spec.calibrated) {
    plan.compression = Compression::kUncalibrated;
  } else if (recipe.stages_size() == 1 && spec.evopress) {
    plan.compression = Compression::kEvoPress;
  } else {
    plan.compression = Compression::kCalibrated;
  }
  // The byte-exact tensor-by-tensor path serves HF input pruned by magnitude
  // only; everything else needs the whole model in memory.
  bool magnitude_only = spec.format == OutputFormat::kHfSafetensors && !recipe.has_calibration() &&
                        recipe.overrides().empty();
  for (const v1::Stage& stage : recipe.stages()) magnitude_only &= stage.has_magnitude();
  plan.path =
      !input.gguf && !plan.evaluate && magnitude_only ? JobPath::kTensorByTensor : JobPath::kModel;
  // Block at a time: the calibrated pipeline already works block by block
  // (evaluation windows advance with it: eval_stream.h), so the model (HF
  // safetensors or GGUF) is never loaded whole.
  if (plan.compression == Compression::kCalibrated) {
    plan.path = JobPath::kBlockStream;
  }
  // So is one compressed without calibration (magnitude, RTN, N:M) when all
  // its targets are in the blocks (the LM head or embeddings: whole model).
  if (plan.compression == Compression::kUncalibrated && plan.path == JobPath::kModel &&
      TargetsInBlocks(input, spec)) {
    plan.path = JobPath::kBlockStream;
  }
  // So is a model that is only evaluated.
  if (plan.compression == Compression::kNone && plan.evaluate) {
    plan.path = JobPath::kBlockStream;
  }
  return plan;
}

}  // namespace compressd::engine
