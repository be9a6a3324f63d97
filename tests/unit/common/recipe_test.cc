#include "common/recipe.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "common/recipe_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compressd {
namespace {

using ::testing::HasSubstr;

v1::Recipe ParseOk(const std::string& text) {
  absl::StatusOr<v1::Recipe> recipe = ParseRecipeText(text);
  EXPECT_TRUE(recipe.ok()) << recipe.status();
  return recipe.ok() ? *recipe : v1::Recipe();
}

// Parses, applies defaults and validates; returns the validation status.
absl::Status ParseAndValidate(const std::string& text) {
  absl::StatusOr<v1::Recipe> recipe = ParseRecipeText(text);
  if (!recipe.ok()) return recipe.status();
  ApplyRecipeDefaults(&*recipe);
  return ValidateRecipe(*recipe);
}

TEST(ParseRecipeTest, YamlBlockForm) {
  v1::Recipe r = ParseOk(R"(
stages:
  - magnitude:
      sparsity: 0.5
  - magnitude:
      pattern: "2:4"
targets:
  include: ".*_proj$"
  ignore: ["lm_head", 'model\.layers\.0\..*']
output:
  format: hf_safetensors
)");
  ASSERT_EQ(r.stages_size(), 2);
  EXPECT_DOUBLE_EQ(r.stages(0).magnitude().sparsity(), 0.5);
  EXPECT_EQ(r.stages(1).magnitude().pattern(), "2:4");
  EXPECT_EQ(r.targets().include(), ".*_proj$");
  ASSERT_EQ(r.targets().ignore_size(), 2);
  EXPECT_EQ(r.targets().ignore(0), "lm_head");
  EXPECT_EQ(r.targets().ignore(1), "model\\.layers\\.0\\..*");
  EXPECT_EQ(r.output().format(), "hf_safetensors");
  EXPECT_TRUE(ValidateRecipe(r).ok()) << ValidateRecipe(r);
}

TEST(ParseRecipeTest, YamlFlowFormAndUnquotedPattern) {
  v1::Recipe r = ParseOk(
      "stages: [{magnitude: {pattern: 2:4}}]\n"
      "targets: {include: \".*_proj$\", ignore: [lm_head]}\n"
      "output: {format: hf_safetensors}\n");
  ASSERT_EQ(r.stages_size(), 1);
  EXPECT_EQ(r.stages(0).magnitude().pattern(), "2:4");
  EXPECT_EQ(r.targets().ignore(0), "lm_head");
}

TEST(ParseRecipeTest, JsonForm) {
  v1::Recipe r = ParseOk(R"({"stages": [{"magnitude": {"sparsity": 0.25}}],
                             "targets": {"include": "q_proj", "ignore": []},
                             "output": {"format": "hf_safetensors"}})");
  ASSERT_EQ(r.stages_size(), 1);
  EXPECT_DOUBLE_EQ(r.stages(0).magnitude().sparsity(), 0.25);
  EXPECT_EQ(r.targets().include(), "q_proj");
}

TEST(ParseRecipeTest, IntegerSparsityAndNullValuesAreAccepted) {
  v1::Recipe r = ParseOk("stages: [{magnitude: {sparsity: 1}}]\ntargets:\n");
  EXPECT_DOUBLE_EQ(r.stages(0).magnitude().sparsity(), 1.0);
  EXPECT_FALSE(r.has_targets());
}

TEST(ParseRecipeTest, UnknownFieldIsRejectedByPath) {
  absl::StatusOr<v1::Recipe> r = ParseRecipeText("stages: [{magnitude: {sparsty: 0.5}}]");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("stages[0].magnitude.sparsty"));
  EXPECT_THAT(r.status().message(), HasSubstr("unknown field"));

  r = ParseRecipeText("{\"stages\": [], \"outputs\": {}}");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("\"outputs\""));

  r = ParseRecipeText("stages: [{prune: {}}]");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("stages[0].prune"));
}

TEST(ParseRecipeTest, WrongTypeIsRejected) {
  absl::StatusOr<v1::Recipe> r = ParseRecipeText("stages: [{magnitude: {sparsity: half}}]");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("recipe: "));
  EXPECT_THAT(r.status().message(), HasSubstr("sparsity"));

  r = ParseRecipeText("stages: {magnitude: {sparsity: 0.5}}\n");  // not a list
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("stages: expected a list"));

  r = ParseRecipeText("stages: [magnitude]\n");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("stages[0]: expected a mapping"));

  r = ParseRecipeText("stages: [{magnitude: {sparsity: 0.5}}]\ntargets: {ignore: lm_head}\n");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("targets.ignore: expected a list"));

  r = ParseRecipeText("output: hf_safetensors\n");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("output: expected a mapping"));

  r = ParseRecipeText("targets: {include: [a]}\n");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("include"));

  r = ParseRecipeText("- 1\n- 2\n");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("top level"));
}

TEST(ParseRecipeTest, SyntaxErrorNamesLineAndColumn) {
  absl::StatusOr<v1::Recipe> r = ParseRecipeText("stages:\n  - magnitude: {sparsity: 0.5\n");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("line "));
  EXPECT_THAT(r.status().message(), HasSubstr("column "));
}

TEST(ParseRecipeTest, DuplicateKeyIsRejected) {
  absl::StatusOr<v1::Recipe> r = ParseRecipeText("output: {format: a}\noutput: {format: b}\n");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("duplicate field \"output\""));
}

TEST(ParseRecipeTest, AliasExpansionIsBounded) {
  // Each level references the previous one ten times: 10^8 values if expanded.
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 8; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) text += (j ? ", " : "") + prev;
    text += "]\n";
  }
  absl::StatusOr<v1::Recipe> r = ParseRecipeText(text);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("more than"));
}

TEST(ParseRecipeTest, InvalidUtf8IsRejected) {
  absl::StatusOr<v1::Recipe> r =
      ParseRecipeText("stages: [{magnitude: {sparsity: 0.5}}]\ntargets: {include: \"a\xff\"}\n");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseRecipeTest, FileMissingAndPresent) {
  absl::StatusOr<v1::Recipe> missing = ParseRecipeFile("/nonexistent/recipe.yaml");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);

  const std::string path = ::testing::TempDir() + "/recipe_test.yaml";
  {
    std::ofstream out(path);
    out << "stages: [{magnitude: {sparsity: 0.5}}]\nbogus: 1\n";
  }
  absl::StatusOr<v1::Recipe> r = ParseRecipeFile(path);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(path));
  EXPECT_THAT(r.status().message(), HasSubstr("bogus"));
  std::remove(path.c_str());
}

TEST(RecipeDefaultsTest, FillsIncludeAndFormatOnly) {
  v1::Recipe r = ParseOk("stages: [{magnitude: {sparsity: 0.5}}]");
  ApplyRecipeDefaults(&r);
  EXPECT_EQ(r.targets().include(), ".*(_proj|\\.w[123])$");
  EXPECT_EQ(r.targets().ignore_size(), 0);
  EXPECT_EQ(r.output().format(), "hf_safetensors");

  v1::Recipe custom = ParseOk("stages: [{magnitude: {sparsity: 0.5}}]\ntargets: {include: q_proj}");
  ApplyRecipeDefaults(&custom);
  EXPECT_EQ(custom.targets().include(), "q_proj");
}

TEST(ValidateRecipeTest, EmptyStages) {
  absl::Status s = ParseAndValidate("stages: []");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("stages"));
  EXPECT_EQ(ParseAndValidate("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseAndValidate("{}").code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateRecipeTest, StageWithoutKind) {
  absl::Status s = ParseAndValidate("stages: [{magnitude: {sparsity: 0.5}}, {}]");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("stages[1]"));
}

TEST(ValidateRecipeTest, SparsityRange) {
  EXPECT_TRUE(ParseAndValidate("stages: [{magnitude: {sparsity: 0.5}}]").ok());
  EXPECT_TRUE(ParseAndValidate("stages: [{magnitude: {sparsity: 0.999}}]").ok());
  for (const char* bad : {"1", "1.5", "-0.1", "\"NaN\""}) {
    absl::Status s = ParseAndValidate(
        std::string("stages: [{magnitude: {sparsity: 0.5}}, {magnitude: {sparsity: ") + bad +
        "}}]");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr("stages[1].magnitude.sparsity")) << bad;
  }
  // 0 is indistinguishable from unset in proto3: reported as "neither".
  absl::Status zero = ParseAndValidate("stages: [{magnitude: {sparsity: 0}}]");
  EXPECT_EQ(zero.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(zero.message(), HasSubstr("stages[0].magnitude"));
  EXPECT_THAT(zero.message(), HasSubstr("neither"));
}

TEST(ValidateRecipeTest, Patterns) {
  for (const char* good : {"2:4", "1:2", "4:8", "63:64"}) {
    EXPECT_TRUE(
        ParseAndValidate(std::string("stages: [{magnitude: {pattern: \"") + good + "\"}}]").ok())
        << good;
  }
  for (const char* bad :
       {"4:2", "2:0", "a:b", "2:4:8", "0:4", "2:2", "1:65", "", ":4", "2:", " 2:4", "-1:4"}) {
    v1::Recipe r;
    r.add_stages()->mutable_magnitude()->set_pattern(bad);
    ApplyRecipeDefaults(&r);
    absl::Status s = ValidateRecipe(r);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    if (*bad != '\0') {
      EXPECT_THAT(s.message(), HasSubstr("stages[0].magnitude.pattern")) << bad;
      EXPECT_THAT(s.message(), HasSubstr(bad)) << bad;
    }
  }
}

TEST(ValidateRecipeTest, BothSparsityAndPattern) {
  absl::Status s = ParseAndValidate("stages: [{magnitude: {sparsity: 0.5, pattern: \"2:4\"}}]");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("stages[0].magnitude"));
  EXPECT_THAT(s.message(), HasSubstr("not both"));
}

TEST(ValidateRecipeTest, BadRegex) {
  absl::Status s =
      ParseAndValidate("stages: [{magnitude: {sparsity: 0.5}}]\ntargets: {include: \"(unclosed\"}");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("targets.include"));

  s = ParseAndValidate(
      "stages: [{magnitude: {sparsity: 0.5}}]\ntargets: {ignore: [lm_head, \"[a-\"]}");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("targets.ignore[1]"));
}

TEST(ValidateRecipeTest, OutputFormat) {
  absl::Status s =
      ParseAndValidate("stages: [{magnitude: {sparsity: 0.5}}]\noutput: {format: onnx}");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "output.format: unknown format onnx (supported: hf_safetensors, gptq, "
            "compressed_tensors, gguf, spqr)");
  EXPECT_TRUE(
      ParseAndValidate("stages: [{magnitude: {sparsity: 0.5}}]\noutput: {format: gguf}").ok());
}

TEST(ValidateRecipeTest, ComputePrecision) {
  const std::string stages = "stages: [{magnitude: {sparsity: 0.5}}]\n";
  EXPECT_TRUE(ParseAndValidate(stages + "compute: bf16").ok());
  EXPECT_TRUE(ParseAndValidate(stages + "compute: fp32").ok());
  const absl::Status s = ParseAndValidate(stages + "compute: fp16");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "compute: unknown precision \"fp16\" (fp32, bf16)");
}

TEST(ValidateRecipeTest, OutputDtype) {
  const std::string stages = "stages: [{magnitude: {sparsity: 0.5}}]\n";
  EXPECT_TRUE(ParseAndValidate(stages + "output: {dtype: bf16}").ok());
  EXPECT_TRUE(ParseAndValidate(stages + "output: {format: hf_safetensors, dtype: f16}").ok());
  absl::Status s = ParseAndValidate(stages + "output: {dtype: int8}");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "output.dtype: unknown dtype \"int8\" (f32, bf16, f16)");
  s = ParseAndValidate(stages + "output: {format: gguf, dtype: bf16}");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("hf_safetensors outputs only"));
  absl::StatusOr<RecipeSpec> spec =
      PrepareRecipe(*ParseRecipeText(stages + "output: {dtype: bf16}"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->hf_dtype, "BF16");
  EXPECT_EQ(PrepareRecipe(*ParseRecipeText(stages))->hf_dtype, "F32");
}

TEST(EvaluationRecipeTest, ParsesDefaultsAndEvaluateOnly) {
  v1::Recipe r = ParseOk(R"(
evaluation:
  perplexity:
    - {name: ppl-persuasion, dataset_id: ds-1, file: austen/persuasion.txt, windows: 4}
    - {path: /data/text/kjv.txt, window: 256}
  kl: true
  threads: 2
)");
  ASSERT_EQ(r.evaluation().perplexity_size(), 2);
  EXPECT_TRUE(r.evaluation().kl());
  EXPECT_EQ(r.evaluation().threads(), 2);
  ApplyRecipeDefaults(&r);
  const v1::EvalDataset& a = r.evaluation().perplexity(0);
  EXPECT_EQ(a.name(), "ppl-persuasion");
  EXPECT_EQ(a.dataset_id(), "ds-1");
  EXPECT_EQ(a.file(), "austen/persuasion.txt");
  EXPECT_EQ(a.window(), 512);
  EXPECT_EQ(a.windows(), 4);
  const v1::EvalDataset& b = r.evaluation().perplexity(1);
  EXPECT_EQ(b.name(), "kjv.txt");  // the file name when no name is given
  EXPECT_EQ(b.window(), 256);
  EXPECT_EQ(b.windows(), 64);
  EXPECT_TRUE(IsEvaluateOnly(r));
  EXPECT_TRUE(ValidateRecipe(r).ok()) << ValidateRecipe(r);

  // With stages it is a compression job that also evaluates.
  r.add_stages()->mutable_magnitude()->set_sparsity(0.5);
  EXPECT_FALSE(IsEvaluateOnly(r));
  EXPECT_TRUE(ValidateRecipe(r).ok()) << ValidateRecipe(r);
}

TEST(EvaluationRecipeTest, NoStagesNeedsAnEvaluationSet) {
  for (const char* text : {"evaluation: {}", "evaluation: {perplexity: []}", "stages: []"}) {
    absl::Status s = ParseAndValidate(text);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(s.message(), HasSubstr("stages: at least one stage is required")) << text;
  }
  absl::Status kl =
      ParseAndValidate("stages: [{magnitude: {sparsity: 0.5}}]\nevaluation: {kl: true}");
  EXPECT_EQ(kl.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(kl.message(), HasSubstr("evaluation.kl"));
}

TEST(EvaluationRecipeTest, SourcesAndRangesNameTheField) {
  struct Case {
    const char* set;
    const char* field;
  } cases[] = {
      {"{name: a}", "evaluation.perplexity[1]: set path"},
      {"{path: /x.txt, dataset_id: ds-1, file: x.txt}", "not both"},
      {"{dataset_id: ds-1}", "evaluation.perplexity[1].file: required"},
      {"{file: x.txt}", "evaluation.perplexity[1].dataset_id: required"},
      {"{dataset_id: ds-1, file: ../x.txt}", "evaluation.perplexity[1].file"},
      {"{path: /x.txt, window: 1}", "evaluation.perplexity[1].window: must be in [2, 131072]"},
      {"{path: /x.txt, window: -5}", "evaluation.perplexity[1].window"},
      {"{path: /x.txt, windows: -1}", "evaluation.perplexity[1].windows"},
      {"{path: /y/a.txt}", "evaluation.perplexity[1].name: \"a.txt\" is used"},
  };
  for (const Case& c : cases) {
    const std::string text =
        std::string("evaluation:\n  perplexity: [{path: /a.txt}, ") + c.set + "]";
    absl::Status s = ParseAndValidate(text);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.set;
    EXPECT_THAT(s.message(), HasSubstr(c.field)) << c.set;
  }
  absl::Status threads =
      ParseAndValidate("evaluation: {perplexity: [{path: /a.txt}], threads: -1}");
  EXPECT_EQ(threads.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(threads.message(), HasSubstr("evaluation.threads"));

  absl::Status unknown = ParseAndValidate("evaluation: {perplexity: [{path: /a.txt, windws: 4}]}");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.message(), HasSubstr("evaluation.perplexity[0].windws"));
}

}  // namespace
}  // namespace compressd

namespace compressd {
namespace {

// The dashboard's recipe viewer and its resubmit form: YAML that reads back
// to the same message, numbers as numbers, number-like strings quoted.
TEST(RecipeToYamlTest, RoundTripsAndReadsLikeARecipe) {
  absl::StatusOr<v1::Recipe> recipe = ParseRecipeText(R"(
stages:
  - evopress: {mode: sparsity, target: 0.5, levels: [0.4, 0.5, 0.6], seed: 7, step_tokens: [128, 256]}
  - gptq: {grid: {bits: 4, group_size: 128}}
calibration: {name: "2021", file: sotu, samples: 16}
evaluation: {perplexity: [{name: "true", path: /tmp/x.txt, windows: 4}], kl: true}
output: {format: gguf}
)");
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  ApplyRecipeDefaults(&*recipe);
  const std::string yaml = RecipeToYaml(*recipe);
  EXPECT_NE(yaml.find("seed: 7\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("name: \"2021\""), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("name: \"true\""), std::string::npos) << yaml;
  absl::StatusOr<v1::Recipe> back = ParseRecipeText(yaml);
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << yaml;
  EXPECT_EQ(back->SerializeAsString(), recipe->SerializeAsString()) << yaml;
}

}  // namespace
}  // namespace compressd
