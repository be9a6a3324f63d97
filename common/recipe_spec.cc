#include "common/recipe_spec.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/recipe.h"
#include "common/recipe_field.h"
#include "common/recipe_stages.h"
#include "common/status_macros.h"

namespace compressd {
namespace {

constexpr int kMaxPatternM = 64;

struct GgufTypeName {
  const char* name;
  int id;  // ggml type id (GGUF spec)
};
// The GGUF types the exporter writes; the one list of their names.
constexpr GgufTypeName kGgufTypes[] = {
    {"F32", 0},  {"F16", 1},  {"Q8_0", 8},  {"Q4_0", 2},  {"Q4_1", 3},  {"Q5_0", 6},
    {"Q5_1", 7}, {"Q2_K", 10}, {"Q3_K", 11}, {"Q4_K", 12}, {"Q5_K", 13}, {"Q6_K", 14}};


// A digit string of 1-3 characters.
bool SmallNumber(std::string_view s, int* value) {
  if (s.empty() || s.size() > 3) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *value = v;
  return true;
}

absl::StatusOr<EvoPressSpec> CompileEvoPress(const v1::EvoPressStage& e, const std::string& path) {
  EvoPressSpec spec;
  if (e.mode() == "sparsity") {
    spec.mode = EvoMode::kSparsity;
  } else if (e.mode() == "bits") {
    spec.mode = EvoMode::kBits;
  } else if (e.mode() == "drop") {
    spec.mode = EvoMode::kDrop;
  } else {
    return FieldError(path + ".mode",
                      absl::StrCat("must be sparsity, bits or drop, got \"", e.mode(), "\""));
  }
  if (e.fitness() == "kl") {
    spec.fitness = EvoFitness::kKl;
  } else if (e.fitness() == "ppl") {
    spec.fitness = EvoFitness::kPpl;
  } else {
    return FieldError(path + ".fitness",
                      absl::StrCat("must be kl or ppl, got \"", e.fitness(), "\""));
  }
  if (e.database().empty()) {
    spec.database = EvoDatabase::kNone;
  } else if (e.database() == "sequential") {
    spec.database = EvoDatabase::kSequential;
  } else if (e.database() == "dense_inputs") {
    spec.database = EvoDatabase::kDenseInputs;
  } else {
    return FieldError(path + ".database", absl::StrCat("must be sequential or dense_inputs, "
                                                       "got \"",
                                                       e.database(), "\""));
  }
  if (e.start().empty() || e.start() == "random") {
    spec.start = EvoStart::kRandom;
  } else if (e.start() == "score") {
    spec.start = EvoStart::kScore;
  } else {
    return FieldError(path + ".start",
                      absl::StrCat("must be random or score, got \"", e.start(), "\""));
  }
  return spec;
}

// The pattern of a pruning stage ("" for the others and for sparsity-only stages).
const std::string& StagePattern(const v1::Stage& stage) {
  static const std::string kNone;
  switch (stage.kind_case()) {
    case v1::Stage::kMagnitude:
      return stage.magnitude().pattern();
    case v1::Stage::kWanda:
      return stage.wanda().pattern();
    case v1::Stage::kSparsegpt:
      return stage.sparsegpt().pattern();
    default:
      return kNone;
  }
}

absl::StatusOr<OutputFormat> CompileFormat(const std::string& format) {
  if (format.empty() || format == "hf_safetensors") return OutputFormat::kHfSafetensors;
  if (format == "gguf") return OutputFormat::kGguf;
  if (format == "gptq") return OutputFormat::kGptq;
  if (format == "compressed_tensors") return OutputFormat::kCompressedTensors;
  if (format == "spqr") return OutputFormat::kSpqr;
  return absl::InvalidArgumentError(
      absl::StrCat("output.format: unknown format ", format,
                   " (supported: hf_safetensors, gptq, compressed_tensors, gguf, spqr)"));
}

}  // namespace

absl::StatusOr<NMPattern> ParseNMPattern(std::string_view pattern, const std::string& field) {
  NMPattern p;
  if (pattern.empty()) return p;
  const size_t colon = pattern.find(':');
  if (colon == std::string_view::npos || !SmallNumber(pattern.substr(0, colon), &p.n) ||
      !SmallNumber(pattern.substr(colon + 1), &p.m) ||
      !(p.n > 0 && p.n < p.m && p.m <= kMaxPatternM)) {
    return FieldError(field, absl::StrCat("must be \"N:M\" with 0 < N < M <= ", kMaxPatternM,
                                          ", got \"", std::string(pattern), "\""));
  }
  return p;
}

const char* OutputFormatName(OutputFormat format) {
  switch (format) {
    case OutputFormat::kHfSafetensors:
      return "hf_safetensors";
    case OutputFormat::kGguf:
      return "gguf";
    case OutputFormat::kGptq:
      return "gptq";
    case OutputFormat::kCompressedTensors:
      return "compressed_tensors";
    case OutputFormat::kSpqr:
      return "spqr";
  }
  return "unknown";
}

std::optional<int> GgufTypeId(std::string_view name) {
  for (const GgufTypeName& t : kGgufTypes) {
    if (name == t.name) return t.id;
  }
  return std::nullopt;
}

std::string GgufTypeNames() {
  std::vector<std::string> names;
  for (const GgufTypeName& t : kGgufTypes) names.push_back(t.name);
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<LayerStage> EffectiveLayerStage(const v1::Recipe& recipe, int index,
                                               const std::string& module, bool* skip) {
  LayerStage out;
  ASSIGN_OR_RETURN(out.stage, EffectiveStage(recipe, index, module, skip));
  ASSIGN_OR_RETURN(out.pattern,
                   ParseNMPattern(StagePattern(out.stage),
                                  absl::StrCat("stages[", index, "] for ", module, ".pattern")));
  return out;
}

absl::StatusOr<RecipeSpec> CompileRecipe(const v1::Recipe& recipe) {
  RecipeSpec spec;
  spec.recipe = recipe;
  ASSIGN_OR_RETURN(spec.format, CompileFormat(recipe.output().format()));
  if (!recipe.output().dtype().empty())
    spec.hf_dtype = absl::AsciiStrToUpper(recipe.output().dtype());
  for (int i = 0; i < recipe.stages_size(); ++i) {
    const v1::Stage& stage = recipe.stages(i);
    const std::string path = absl::StrCat("stages[", i, "].", StageKindName(stage), ".pattern");
    ASSIGN_OR_RETURN(NMPattern p, ParseNMPattern(StagePattern(stage), path));
    spec.patterns.push_back(p);
    if (stage.has_evopress()) {
      ASSIGN_OR_RETURN(spec.evopress,
                       CompileEvoPress(stage.evopress(), absl::StrCat("stages[", i, "].evopress")));
    }
  }
  const v1::GgufOutput& g = recipe.output().gguf();
  if (!g.target_type().empty() && g.target_type() != "auto") {
    spec.gguf.target = GgufTypeId(g.target_type());
    if (!spec.gguf.target) {
      return FieldError(
          "output.gguf.target_type",
          absl::StrCat("unknown type \"", g.target_type(), "\" (auto, ", GgufTypeNames(), ")"));
    }
  }
  if (!g.other_type().empty()) {
    const std::optional<int> other = GgufTypeId(g.other_type());
    if (!other) {
      return FieldError("output.gguf.other_type", absl::StrCat("unknown type \"", g.other_type(),
                                                               "\" (", GgufTypeNames(), ")"));
    }
    spec.gguf.other = *other;
  }
  spec.evaluate_only = IsEvaluateOnly(recipe);
  spec.calibrated = NeedsCalibration(recipe);
  return spec;
}

absl::StatusOr<RecipeSpec> PrepareRecipe(v1::Recipe recipe) {
  ApplyRecipeDefaults(&recipe);
  RETURN_IF_ERROR(ValidateRecipe(recipe));
  return CompileRecipe(recipe);
}

}  // namespace compressd
