#include "workers/engine/job_runner.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <new>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/recipe.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "workers/engine/algorithms/magnitude.h"
#include "workers/engine/export/safetensors_writer.h"
#include "workers/engine/model/hf_model.h"
#include "workers/engine/model_job.h"

namespace compressd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool HasGgufMagic(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string(magic, 4) == "GGUF";
}

struct ModelInput {
  std::string path;  // the .gguf file, or the HF model directory
  bool gguf = false;
};

// A .gguf file, a directory holding one .gguf file and no safetensors (how
// the worker lays out a GGUF upload), or an HF safetensors directory.
absl::StatusOr<ModelInput> ResolveModelInput(const std::string& model_path) {
  std::error_code ec;
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

struct Target {
  std::string tensor;
  std::string module;
  const HfModel::Shard* shard;
  const TensorInfo* info;
};

// The targeted tensors, checked up front so a recipe that cannot apply fails
// before any work: 2-D F32/F16/BF16 weights whose input dim fits every N:M stage.
absl::StatusOr<std::vector<Target>> SelectTargets(const HfModel& model, const v1::Recipe& recipe,
                                                  EventSink& events) {
  ASSIGN_OR_RETURN(TargetMatcher matcher, TargetMatcher::Create(recipe.targets()));
  std::vector<Target> targets;
  for (const auto& [name, ref] : model.tensors()) {
    ASSIGN_OR_RETURN(bool is_target, matcher.IsTarget(name, ref.info->shape));
    if (!is_target) continue;
    if (!IsConvertibleFloat(ref.info->dtype)) {
      EmitLog(events, "warning", absl::StrCat("skipping ", name, ": dtype ",
                                              DTypeName(ref.info->dtype), " is not a float type"));
      continue;
    }
    for (int i = 0; i < recipe.stages_size(); ++i) {
      const std::string& pattern = recipe.stages(i).magnitude().pattern();
      if (pattern.empty()) continue;
      int n = 0, m = 0;
      RETURN_IF_ERROR(ParseNMPattern(pattern, &n, &m));
      if (ref.info->shape[1] % m != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "stages[", i, "]: tensor \"", name, "\" has input dimension ", ref.info->shape[1],
            ", not a multiple of M=", m, " for N:M pattern \"", pattern, "\""));
      }
    }
    targets.push_back({name, *TargetMatcher::ModuleName(name), ref.shard, ref.info});
  }
  if (targets.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "targets.include: \"", recipe.targets().include(),
        "\" (minus ignore) matches no 2-D F32/F16/BF16 weight of the model"));
  }
  std::stable_sort(targets.begin(), targets.end(), [](const Target& a, const Target& b) {
    if (a.shard != b.shard) return a.shard->rel_path < b.shard->rel_path;
    return NaturalLess(a.tensor, b.tensor);
  });
  return targets;
}

// Prunes one tensor through every stage; returns its bytes in the original dtype.
absl::StatusOr<std::string> PruneTensor(const Target& t, const v1::Recipe& recipe,
                                        json* layer) {
  const Clock::time_point start = Clock::now();
  ASSIGN_OR_RETURN(std::vector<float> w, t.shard->file->ReadAsFloat(*t.info));
  const int64_t rows = t.info->shape[0], cols = t.info->shape[1];
  for (const v1::Stage& stage : recipe.stages()) {
    if (!stage.has_magnitude()) {
      return absl::InvalidArgumentError("stages: only magnitude stages are supported");
    }
    RETURN_IF_ERROR(ApplyMagnitudeStage(stage.magnitude(), w.data(), rows, cols, t.tensor));
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
    case HfModel::Layout::kSingle: return "single";
    case HfModel::Layout::kIndexed: return "indexed";
    case HfModel::Layout::kGlob: return "glob";
  }
  return "unknown";
}

// The HF-safetensors-in, HF-safetensors-out path: tensor by tensor, each
// written back in its own dtype and shard (byte-identical where untouched).
absl::StatusOr<std::string> RunHfTensors(const std::string& model_dir, const v1::Recipe& recipe,
                                         const std::string& out_dir, EventSink& events,
                                         CancelToken& cancel) {
  const Clock::time_point start = Clock::now();
  EmitProgress(events, "load", 0, 1, model_dir);
  ASSIGN_OR_RETURN(std::unique_ptr<HfModel> model, HfModel::Open(model_dir));
  ASSIGN_OR_RETURN(std::vector<Target> targets, SelectTargets(*model, recipe, events));
  const double load_s = SecondsSince(start);
  EmitProgress(events, "load", 1, 1, model_dir);
  EmitLog(events, "info", absl::StrCat("loaded ", model->config().model_type, " model: ",
                                       model->tensors().size(), " tensors in ",
                                       model->shards().size(), " shard(s), ", targets.size(),
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

  json summary = {
      {"format", "hf_safetensors"},
      {"model", {{"model_type", model->config().model_type},
                 {"layout", LayoutName(model->layout())},
                 {"shards", model->shards().size()},
                 {"tensors", model->tensors().size()},
                 {"parameters", model_params}}},
      {"layers", std::move(layers)},
      {"totals", {{"targeted_tensors", targets.size()},
                  {"targeted_parameters", targeted_params},
                  {"zeros", zeros},
                  {"sparsity", targeted_params ? static_cast<double>(zeros) / targeted_params : 0},
                  {"model_sparsity", model_params ? static_cast<double>(zeros) / model_params : 0}}},
      {"timing_seconds", {{"load", load_s},
                          {"prune", prune_s},
                          {"export", export_s},
                          {"total", SecondsSince(start)}}}};
  return summary.dump();
}

absl::StatusOr<std::string> Run(const std::string& model_path, v1::Recipe recipe,
                                const std::string& out_dir, const RunOptions& options,
                                EventSink& events, CancelToken& cancel) {
  ApplyRecipeDefaults(&recipe);
  RETURN_IF_ERROR(ValidateRecipe(recipe));
  std::error_code ec;
  if (!fs::exists(model_path, ec)) {
    return absl::NotFoundError(absl::StrCat(model_path, ": no such file or directory"));
  }
  if (fs::exists(out_dir, ec) && fs::equivalent(model_path, out_dir, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat(out_dir, ": the output directory must differ from the model directory"));
  }
  ASSIGN_OR_RETURN(ModelInput input, ResolveModelInput(model_path));
  // The byte-exact tensor-by-tensor path serves HF input pruned by magnitude
  // only; everything else needs the whole model in memory.
  bool magnitude_only = recipe.output().format() == "hf_safetensors" && !recipe.has_calibration() &&
                        recipe.overrides().empty();
  for (const v1::Stage& stage : recipe.stages()) magnitude_only &= stage.has_magnitude();
  if (input.gguf || !recipe.evaluation().perplexity().empty() || !magnitude_only) {
    return RunModelRecipe(input.path, input.gguf, recipe, out_dir, options, events, cancel);
  }
  return RunHfTensors(input.path, recipe, out_dir, events, cancel);
}

}  // namespace

absl::StatusOr<std::string> RunRecipe(const std::string& model_dir, const v1::Recipe& recipe,
                                      const std::string& out_dir, EventSink& events,
                                      CancelToken& cancel, const RunOptions& options) {
  // The engine's own code reports errors as Status; this boundary also turns
  // anything thrown by the standard library into a Status instead of aborting.
  try {
    return Run(model_dir, recipe, out_dir, options, events, cancel);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(model_dir, ": out of memory"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(model_dir, ": ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<ModelPartRunner>> CreatePartRunner(const std::string& model_path,
                                                                  const v1::Recipe& recipe,
                                                                  const RunOptions& options,
                                                                  EventSink& events,
                                                                  const CancelToken& cancel) {
  v1::Recipe full = recipe;
  ApplyRecipeDefaults(&full);
  RETURN_IF_ERROR(ValidateRecipe(full));
  ASSIGN_OR_RETURN(ModelInput input, ResolveModelInput(model_path));
  try {
    return ModelPartRunner::Create(input.path, input.gguf, full, options, events, cancel);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(model_path, ": out of memory"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(model_path, ": ", e.what()));
  }
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

}  // namespace compressd
