// The typed recipe: what the engine receives. A recipe is validated and its
// defaults applied once (PrepareRecipe: by the server on SubmitJob, and by
// `compress-worker run`, which has no server); CompileRecipe turns the string
// options of a validated recipe into enums and parsed values, so no code past
// this point compares or parses a recipe string again. The v1::Recipe inside
// keeps the numeric fields (sparsities, bits, counts) as they were sent.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "compressd/v1/recipe.pb.h"

namespace compressd {

// An "N:M" pattern: N zeros in every group of M consecutive inputs.
struct NMPattern {
  int n = 0;
  int m = 0;
  bool set() const { return m > 0; }
};
// The one N:M parser: "" -> unset; INVALID_ARGUMENT naming `field` unless
// "N:M" with 0 < N < M <= 64.
absl::StatusOr<NMPattern> ParseNMPattern(std::string_view pattern, const std::string& field);

enum class OutputFormat { kHfSafetensors, kGguf, kGptq, kCompressedTensors, kSpqr };
const char* OutputFormatName(OutputFormat format);

enum class EvoMode { kSparsity, kBits, kDrop };
enum class EvoFitness { kKl, kPpl };
enum class EvoDatabase { kNone, kSequential, kDenseInputs };  // kNone: drop mode
enum class EvoStart { kRandom, kScore };                      // "": random

struct EvoPressSpec {
  EvoMode mode = EvoMode::kSparsity;
  EvoFitness fitness = EvoFitness::kKl;
  EvoDatabase database = EvoDatabase::kNone;
  EvoStart start = EvoStart::kRandom;
};

// GGUF tensor types by their ggml type id (the GGUF spec's numbering).
struct GgufTypes {
  std::optional<int> target;  // nullopt: "auto" (chosen per tensor from its grid)
  int other = 8;              // Q8_0
};
// The GGUF type names accepted in output.gguf; the id of `name`, or nullopt.
std::optional<int> GgufTypeId(std::string_view name);
// "F32, F16, Q8_0, ..." for messages.
std::string GgufTypeNames();

// Stage `index` as it applies to `module` (recipe_stages.h EffectiveStage:
// the overrides merged in; *skip set when one skips it), with its N:M pattern
// parsed.
struct LayerStage {
  v1::Stage stage;
  NMPattern pattern;
};
absl::StatusOr<LayerStage> EffectiveLayerStage(const v1::Recipe& recipe, int index,
                                               const std::string& module, bool* skip);

struct RecipeSpec {
  v1::Recipe recipe;  // defaults applied, validated
  OutputFormat format = OutputFormat::kHfSafetensors;
  // The dtype of an hf_safetensors output's weights, as safetensors names
  // it: "F32" (default), "BF16" or "F16" (output.dtype).
  std::string hf_dtype = "F32";
  std::vector<NMPattern> patterns;  // per stage (unset for stages without one)
  GgufTypes gguf;
  std::optional<EvoPressSpec> evopress;  // the recipe's evopress stage, when it has one
  bool evaluate_only = false;            // no stages, at least one evaluation set
  bool calibrated = false;               // NeedsCalibration
};

// The typed form of a recipe that already has its defaults and passed
// ValidateRecipe (a leased task's recipe, validated by the server).
// INVALID_ARGUMENT naming the field when it did not.
absl::StatusOr<RecipeSpec> CompileRecipe(const v1::Recipe& recipe);

// Applies defaults, validates and compiles: the one place a user's recipe is
// checked (server SubmitJob, `compress-worker run`).
absl::StatusOr<RecipeSpec> PrepareRecipe(v1::Recipe recipe);

}  // namespace compressd
