#include "workers/engine/pipeline/tensor_job.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "nlohmann/json.hpp"
#include "workers/engine/algorithms/magnitude.h"
#include "workers/engine/export/safetensors_writer.h"
#include "workers/engine/model/hf_model.h"
#include "workers/engine/pipeline/summary.h"
#include "workers/engine/pipeline/targets.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Target {
  std::string tensor;
  std::string module;
  const HfModel::Shard* shard;
  const TensorInfo* info;
};

// The targeted tensors, checked up front so a recipe that cannot apply fails
// before any work: 2-D F32/F16/BF16 weights whose input dim fits every N:M stage.
absl::StatusOr<std::vector<Target>> SelectTargets(const HfModel& model, const RecipeSpec& spec,
                                                  EventSink& events) {
  const v1::Recipe& recipe = spec.recipe;
  ASSIGN_OR_RETURN(TargetMatcher matcher, TargetMatcher::Create(recipe.targets()));
  std::vector<Target> targets;
  for (const auto& [name, ref] : model.tensors()) {
    ASSIGN_OR_RETURN(bool is_target, matcher.IsTarget(name, ref.info->shape));
    if (!is_target) continue;
    if (!IsConvertibleFloat(ref.info->dtype)) {
      EmitLog(events, "warning",
              absl::StrCat("skipping ", name, ": dtype ", DTypeName(ref.info->dtype),
                           " is not a float type"));
      continue;
    }
    RETURN_IF_ERROR(CheckPatternsFit(spec, name, ref.info->shape[1]));
    targets.push_back({name, *TargetMatcher::ModuleName(name), ref.shard, ref.info});
  }
  if (targets.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("targets.include: \"", recipe.targets().include(),
                     "\" (minus ignore) matches no 2-D F32/F16/BF16 weight of the model"));
  }
  std::stable_sort(targets.begin(), targets.end(), [](const Target& a, const Target& b) {
    if (a.shard != b.shard) return a.shard->rel_path < b.shard->rel_path;
    return NaturalLess(a.tensor, b.tensor);
  });
  return targets;
}

// Prunes one tensor through every stage; returns its bytes in the original dtype.
absl::StatusOr<std::string> PruneTensor(const Target& t, const RecipeSpec& spec, json* layer) {
  const Clock::time_point start = Clock::now();
  ASSIGN_OR_RETURN(std::vector<float> w, t.shard->file->ReadAsFloat(*t.info));
  const int64_t rows = t.info->shape[0], cols = t.info->shape[1];
  for (int i = 0; i < spec.recipe.stages_size(); ++i) {
    const v1::Stage& stage = spec.recipe.stages(i);
    if (!stage.has_magnitude()) {
      return absl::InvalidArgumentError("stages: only magnitude stages are supported");
    }
    RETURN_IF_ERROR(ApplyMagnitude(stage.magnitude().sparsity(), spec.patterns[i], w.data(), rows,
                                   cols, t.tensor));
  }
  ASSIGN_OR_RETURN(std::string bytes, FloatsToBytes(t.info->dtype, w.data(), w.size()));
  const size_t zeros = CountZeros(w.data(), w.size());
  *layer = {{"name", t.module},
            {"tensor", t.tensor},
            {"dtype", DTypeName(t.info->dtype)},
            {"shape", t.info->shape},
            {"numel", t.info->numel},
            {"zeros", zeros},
            {"sparsity", t.info->numel ? static_cast<double>(zeros) / t.info->numel : 0.0},
            {"seconds", SecondsSince(start)}};
  return bytes;
}

const char* LayoutName(HfModel::Layout layout) {
  switch (layout) {
    case HfModel::Layout::kSingle:
      return "single";
    case HfModel::Layout::kIndexed:
      return "indexed";
    case HfModel::Layout::kGlob:
      return "glob";
  }
  return "unknown";
}

}  // namespace

absl::StatusOr<std::string> RunTensorJob(const std::string& model_dir, const RecipeSpec& recipe,
                                         const std::string& out_dir, EventSink& events,
                                         CancelToken& cancel) {
  const Clock::time_point start = Clock::now();
  EmitProgress(events, "load", 0, 1, model_dir);
  ASSIGN_OR_RETURN(std::unique_ptr<HfModel> model, HfModel::Open(model_dir));
  ASSIGN_OR_RETURN(std::vector<Target> targets, SelectTargets(*model, recipe, events));
  const double load_s = SecondsSince(start);
  EmitProgress(events, "load", 1, 1, model_dir);
  EmitLog(events, "info",
          absl::StrCat("loaded ", model->config().model_type, " model: ", model->tensors().size(),
                       " tensors in ", model->shards().size(), " shard(s), ", targets.size(),
                       " targeted"));

  json layers = json::array();
  double prune_s = 0, export_s = 0;
  uint64_t targeted_params = 0, zeros = 0, model_params = 0;
  for (const auto& [name, ref] : model->tensors()) model_params += ref.info->numel;
  const int total = static_cast<int>(targets.size());
  size_t next = 0;
  const int num_shards = static_cast<int>(model->shards().size());
  int shards_written = 0;
  for (const HfModel::Shard& shard : model->shards()) {
    std::map<std::string, std::string> replaced;
    for (; next < targets.size() && targets[next].shard == &shard; ++next) {
      if (cancel.cancelled()) return absl::CancelledError("job cancelled");
      const Target& t = targets[next];
      json layer;
      ASSIGN_OR_RETURN(replaced[t.tensor], PruneTensor(t, recipe, &layer));
      prune_s += layer["seconds"].get<double>();
      targeted_params += t.info->numel;
      zeros += layer["zeros"].get<uint64_t>();
      EmitProgress(events, "prune", static_cast<int>(next) + 1, total, t.module);
      EmitMetric(events, "sparsity", layer["sparsity"].get<double>(), t.module);
      EmitMetric(events, "seconds", layer["seconds"].get<double>(), t.module);
      layers.push_back(std::move(layer));
    }
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
    const Clock::time_point export_start = Clock::now();
    RETURN_IF_ERROR(WriteShard(shard, replaced, (fs::path(out_dir) / shard.rel_path).string()));
    export_s += SecondsSince(export_start);
    EmitProgress(events, "export", ++shards_written, num_shards, shard.rel_path);
  }
  const Clock::time_point export_start = Clock::now();
  RETURN_IF_ERROR(WriteModelSideFiles(*model, out_dir));
  export_s += SecondsSince(export_start);
  EmitLog(events, "info", absl::StrCat("wrote ", num_shards, " shard(s) and config to ", out_dir));

  JobSummary summary;
  summary.format = "hf_safetensors";
  summary.model = {{"model_type", model->config().model_type},
                   {"layout", LayoutName(model->layout())},
                   {"shards", model->shards().size()},
                   {"tensors", model->tensors().size()},
                   {"parameters", model_params}};
  summary.layers = std::move(layers);
  summary.totals = CompressionTotals{targets.size(), targeted_params, zeros, model_params, {}, {}};
  summary.timing = {
      {"load", load_s}, {"prune", prune_s}, {"export", export_s}, {"total", SecondsSince(start)}};
  return summary.Dump();
}

bool NaturalLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      size_t ie = i, je = j;
      while (ie < a.size() && digit(a[ie])) ++ie;
      while (je < b.size() && digit(b[je])) ++je;
      // Compare as numbers without overflow: strip leading zeros, then by length.
      size_t is = a.find_first_not_of('0', i), js = b.find_first_not_of('0', j);
      is = std::min(is, ie);
      js = std::min(js, je);
      if (ie - is != je - js) return ie - is < je - js;
      const int c = a.compare(is, ie - is, b, js, je - js);
      if (c != 0) return c < 0;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j || (a.size() - i == b.size() - j && a < b);
}

}  // namespace compressd::engine
