#include "common/recipe_stages.h"

#include <string>

#include "common/module_pattern.h"
#include "common/recipe.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compressd {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<v1::Recipe> Prepare(const std::string& text) {
  absl::StatusOr<v1::Recipe> recipe = ParseRecipeText(text);
  if (!recipe.ok()) return recipe.status();
  ApplyRecipeDefaults(&*recipe);
  absl::Status valid = ValidateRecipe(*recipe);
  if (!valid.ok()) return valid;
  return recipe;
}

void ExpectInvalid(const std::string& text, const std::string& needle) {
  absl::StatusOr<v1::Recipe> r = Prepare(text);
  ASSERT_FALSE(r.ok()) << text;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(needle)) << text;
}

TEST(RecipeStagesTest, DefaultsForSolversAndCalibration) {
  absl::StatusOr<v1::Recipe> r = Prepare(R"(
stages:
  - sparsegpt: {sparsity: 0.5}
  - gptq: {grid: {bits: 4}}
calibration: {path: /tmp/sotu}
)");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stages(0).sparsegpt().block_size(), 128);
  EXPECT_DOUBLE_EQ(r->stages(0).sparsegpt().percdamp(), 0.01);
  EXPECT_EQ(r->stages(1).gptq().grid().group_size(), 128);
  EXPECT_FALSE(r->stages(1).gptq().grid().asymmetric());
  EXPECT_EQ(r->calibration().name(), "calib-sotu");
  EXPECT_EQ(r->calibration().samples(), 128);
  EXPECT_EQ(r->calibration().seq_len(), 512);
  EXPECT_TRUE(NeedsCalibration(*r));
}

// GPTQ's defaults are the best-known settings: act-order with static groups
// and the massive-input fallback; static_groups and massive_fallback follow
// act_order unless named, in a stage and in an override.
TEST(RecipeStagesTest, GptqDefaultsToActOrderWithStaticGroups) {
  auto gptq = [](const std::string& fields) {
    absl::StatusOr<v1::Recipe> r = Prepare("stages: [{gptq: {grid: {bits: 4}" + fields +
                                           "}}]\ncalibration: {path: /tmp/sotu}\n"
                                           "overrides: [{modules: '.*down_proj', stage: 0, "
                                           "params: {gptq: {act_order: false}}}]");
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->stages(0).gptq() : v1::GptqStage();
  };
  EXPECT_TRUE(gptq("").act_order());
  EXPECT_TRUE(gptq("").static_groups());
  EXPECT_FALSE(gptq(", act_order: false").act_order());
  EXPECT_FALSE(gptq(", act_order: false").static_groups());
  EXPECT_TRUE(gptq(", static_groups: false").act_order());
  EXPECT_FALSE(gptq(", static_groups: false").static_groups());
  EXPECT_TRUE(gptq("").massive_fallback());
  EXPECT_FALSE(gptq(", act_order: false").massive_fallback());
  EXPECT_FALSE(gptq(", massive_fallback: false").massive_fallback());
  EXPECT_TRUE(gptq(", massive_fallback: false").static_groups());

  absl::StatusOr<v1::Recipe> r = Prepare(
      "stages: [{gptq: {grid: {bits: 4}}}]\ncalibration: {path: /tmp/sotu}\n"
      "overrides: [{modules: '.*down_proj', stage: 0, params: {gptq: {act_order: false}}}]");
  ASSERT_TRUE(r.ok()) << r.status();
  bool skip = false;
  absl::StatusOr<v1::Stage> s = EffectiveStage(*r, 0, "model.layers.3.mlp.down_proj", &skip);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->gptq().act_order());
  EXPECT_FALSE(s->gptq().static_groups());
  EXPECT_FALSE(s->gptq().massive_fallback());
  s = EffectiveStage(*r, 0, "model.layers.3.mlp.up_proj", &skip);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->gptq().act_order());
  EXPECT_TRUE(s->gptq().static_groups());
  EXPECT_TRUE(s->gptq().massive_fallback());
}

TEST(RecipeStagesTest, MagnitudeAndRtnNeedNoCalibration) {
  absl::StatusOr<v1::Recipe> r = Prepare(R"(
stages:
  - magnitude: {sparsity: 0.5}
  - rtn: {grid: {bits: 3, group_size: -1}}
output: {format: gptq}
)");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(NeedsCalibration(*r));
  EXPECT_EQ(r->stages(1).rtn().grid().group_size(), -1);
}

TEST(RecipeStagesTest, RejectsBadValuesNamingTheField) {
  ExpectInvalid("stages: [{gptq: {grid: {bits: 9}}}]\ncalibration: {path: x}",
                "stages[0].gptq.grid.bits: must be in [2, 8], got 9");
  ExpectInvalid("stages: [{rtn: {grid: {bits: 4, group_size: -2}}}]",
                "stages[0].rtn.grid.group_size");
  ExpectInvalid("stages: [{sparsegpt: {sparsity: 1.5}}]\ncalibration: {path: x}",
                "stages[0].sparsegpt.sparsity: must be in (0, 1)");
  ExpectInvalid("stages: [{wanda: {pattern: \"4:2\"}}]\ncalibration: {path: x}",
                "stages[0].wanda.pattern");
  ExpectInvalid("stages: [{sparsegpt: {sparsity: 0.5, percdamp: -1}}]\ncalibration: {path: x}",
                "stages[0].sparsegpt.percdamp");
  ExpectInvalid(
      "stages: [{gptq: {grid: {bits: 4}, act_order: false, static_groups: true}}]\n"
      "calibration: {path: x}",
      "static_groups: only meaningful with act_order");
  ExpectInvalid(
      "stages: [{gptq: {grid: {bits: 4}, act_order: false, massive_fallback: true}}]\n"
      "calibration: {path: x}",
      "stages[0].gptq.massive_fallback: only meaningful with act_order");
  ExpectInvalid(
      "stages: [{gptq: {grid: {bits: 4}, static_groups: false}}]\n"
      "calibration: {path: x}\noutput: {format: compressed_tensors}",
      "stages[0].gptq.static_groups: compressed_tensors output needs contiguous groups");
  ExpectInvalid("stages: [{magnitude: {sparsity: 0.5}}]\noutput: {format: compressed_tensors}",
                "output.format: compressed_tensors needs a stage that quantizes");
  ExpectInvalid("stages: [{}]", "stages[0]: stage has no kind");
  ExpectInvalid("stages: [{rtn: {grid: {bits: 3, group_size: 48, scale_bits: 6}}}]",
                "stages[0].rtn.grid.scale_bits: scales on a lattice need a group_size dividing "
                "256");
  ExpectInvalid("stages: [{rtn: {grid: {bits: 3, group_size: 16, scale_bits: 9}}}]",
                "stages[0].rtn.grid.scale_bits: must be 0 (float scales) or in [2, 8], got 9");
  EXPECT_TRUE(Prepare("stages: [{rtn: {grid: {bits: 3, group_size: 16, scale_bits: 6}}}]").ok());
}

// An asymmetric grid with scale_bits has fractional zero points (no exact 0):
// not while or after pruning, not into formats with integer zero points.
TEST(RecipeStagesTest, AsymmetricLatticeGridsRefuseZerosTheyCannotHold) {
  const std::string asym = "grid: {bits: 2, group_size: 16, asymmetric: true, scale_bits: 4}";
  EXPECT_TRUE(Prepare("stages: [{rtn: {" + asym + "}}]\noutput: {format: gguf}").ok());
  EXPECT_TRUE(Prepare("stages: [{gptq: {" + asym + "}}]\ncalibration: {path: x}").ok());
  ExpectInvalid("stages: [{magnitude: {sparsity: 0.5}}, {rtn: {" + asym + "}}]",
                "stages[1].rtn.grid.scale_bits: an asymmetric grid with scale_bits has no exact "
                "zero");
  ExpectInvalid(
      "stages: [{sparsegpt: {sparsity: 0.5, quantize: {bits: 4, group_size: 32, "
      "asymmetric: true, scale_bits: 6}}}]\ncalibration: {path: x}",
      "stages[0].sparsegpt.quantize.scale_bits: an asymmetric grid");
  ExpectInvalid("stages: [{gptq: {" + asym + "}}]\ncalibration: {path: x}\noutput: {format: gptq}",
                "stages[0].gptq.grid.scale_bits: an asymmetric grid with scale_bits has fractional "
                "zero points, which gptq output cannot store");
  const std::string overrides =
      "overrides: [{modules: 'mlp', stage: 0, params: {rtn: {" + asym + "}}}]";
  ExpectInvalid(
      "stages: [{rtn: {grid: {bits: 4}}}]\noutput: {format: compressed_tensors}\n" + overrides,
      "overrides[0].params.rtn.grid.scale_bits: an asymmetric grid with scale_bits has "
      "fractional zero points, which compressed_tensors output cannot store");
}

TEST(RecipeStagesTest, CalibrationSourceRequiredAndChecked) {
  ExpectInvalid("stages: [{sparsegpt: {sparsity: 0.5}}]", "calibration: the stages need");
  ExpectInvalid("stages: [{gptq: {grid: {bits: 4}}}]\ncalibration: {path: a, dataset_id: d, file: f}",
                "not both");
  ExpectInvalid("stages: [{gptq: {grid: {bits: 4}}}]\ncalibration: {dataset_id: d, file: ../x}",
                "calibration.file");
  ExpectInvalid("stages: [{gptq: {grid: {bits: 4}}}]\ncalibration: {path: a, seq_len: 1}",
                "calibration.seq_len");
}

TEST(RecipeStagesTest, OrderAndComposition) {
  ExpectInvalid(R"(
stages:
  - gptq: {grid: {bits: 4}}
  - sparsegpt: {sparsity: 0.5}
calibration: {path: x}
)",
                "stages[1]: pruning (sparsegpt) after the quantization of stages[0]");
  ExpectInvalid(R"(
stages:
  - rtn: {grid: {bits: 4}}
  - gptq: {grid: {bits: 4}}
calibration: {path: x}
)",
                "at most one stage may quantize");
  ExpectInvalid("stages: [{magnitude: {sparsity: 0.5}}]\noutput: {format: gptq}",
                "gptq needs a stage that quantizes");
  ExpectInvalid("stages: [{magnitude: {sparsity: 0.5}}]\noutput: {format: gguf, gguf: {target_type: Q3_X}}",
                "output.gguf.target_type: unknown type");
  EXPECT_TRUE(Prepare(R"(
stages:
  - sparsegpt: {sparsity: 0.5}
  - gptq: {grid: {bits: 4, group_size: 128}}
calibration: {path: x}
output: {format: gguf, gguf: {target_type: auto, other_type: Q8_0}}
)").ok());
}

TEST(RecipeStagesTest, OverridesMergePerModule) {
  absl::StatusOr<v1::Recipe> r = Prepare(R"(
stages:
  - sparsegpt: {sparsity: 0.5}
  - gptq: {grid: {bits: 4}}
calibration: {path: x}
overrides:
  - {modules: 'model\.layers\.0\..*', stage: 0, params: {sparsegpt: {sparsity: 0.3}}}
  - {modules: '.*down_proj', stage: 1, params: {gptq: {grid: {bits: 8}}}}
  - {modules: '.*q_proj', stage: 0, skip: true}
)");
  ASSERT_TRUE(r.ok()) << r.status();
  bool skip = false;
  absl::StatusOr<v1::Stage> s = EffectiveStage(*r, 0, "model.layers.0.mlp.up_proj", &skip);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_DOUBLE_EQ(s->sparsegpt().sparsity(), 0.3);
  EXPECT_FALSE(skip);
  s = EffectiveStage(*r, 0, "model.layers.1.mlp.up_proj", &skip);
  EXPECT_DOUBLE_EQ(s->sparsegpt().sparsity(), 0.5);
  s = EffectiveStage(*r, 1, "model.layers.1.mlp.down_proj", &skip);
  EXPECT_EQ(s->gptq().grid().bits(), 8);
  EXPECT_EQ(s->gptq().grid().group_size(), 128);  // kept from the stage
  s = EffectiveStage(*r, 0, "model.layers.5.self_attn.q_proj", &skip);
  EXPECT_TRUE(skip);
}

TEST(RecipeStagesTest, PatternsAreBoundedAndLinearTime) {
  const std::string base =
      "stages: [{sparsegpt: {sparsity: 0.5}}]\ncalibration: {path: x}\noverrides:\n";
  ExpectInvalid(base + "  - {modules: '" + std::string(1025, 'a') + "', stage: 0, skip: true}",
                "overrides[0].modules: regex of 1025 characters; at most 1024");
  std::string many = base;
  for (int i = 0; i < 257; ++i) many += "  - {modules: 'a" + std::to_string(i) + "', skip: true}\n";
  ExpectInvalid(many, "overrides: 257 overrides; at most 256");
  // Catastrophic backtracking for a backtracking engine; linear for RE2.
  absl::StatusOr<ModulePattern> p = ModulePattern::Compile("(a*)*b", "f");
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->FullMatch(std::string(100000, 'a')));
  // Backreferences are not RE2: a clear error, not a crash.
  EXPECT_THAT(std::string(ModulePattern::Compile("(a)\\1", "targets.include").status().message()),
              HasSubstr("targets.include: invalid regex"));
  // The patterns users write keep their meaning (full match).
  p = ModulePattern::Compile("model\\.layers\\.[0-3]\\..*_proj$", "f");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->FullMatch("model.layers.2.mlp.up_proj"));
  EXPECT_FALSE(p->FullMatch("model.layers.4.mlp.up_proj"));
  EXPECT_FALSE(p->FullMatch("xmodel.layers.2.mlp.up_proj.weight"));
}

TEST(RecipeStagesTest, BadOverrides) {
  const std::string base =
      "stages: [{sparsegpt: {sparsity: 0.5}}]\ncalibration: {path: x}\noverrides:\n";
  ExpectInvalid(base + "  - {modules: '(', stage: 0, skip: true}", "overrides[0].modules");
  ExpectInvalid(base + "  - {modules: '.*', stage: 3, skip: true}", "overrides[0].stage: no stage 3");
  ExpectInvalid(base + "  - {modules: '.*', stage: 0, params: {gptq: {grid: {bits: 4}}}}",
                "must be a sparsegpt stage");
  ExpectInvalid(base + "  - {modules: '.*', stage: 0, params: {sparsegpt: {pattern: '2:4'}}}",
                "not both");
  ExpectInvalid(base + "  - {modules: '.*', stage: 0}", "set params or skip");
}

}  // namespace
}  // namespace compressd

namespace compressd {
namespace {

// OWL: the paper's defaults, and every misuse refused naming the field.
TEST(RecipeStagesTest, OwlDefaultsAndRefusals) {
  absl::StatusOr<v1::Recipe> r = Prepare(R"(
stages:
  - wanda: {sparsity: 0.6, owl: {}}
  - sparsegpt: {sparsity: 0.7, owl: {lambda: 0.1, m: 3}}
calibration: {path: /tmp/sotu}
)");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_DOUBLE_EQ(r->stages(0).wanda().owl().lambda(), 0.08);
  EXPECT_DOUBLE_EQ(r->stages(0).wanda().owl().m(), 5.0);
  EXPECT_DOUBLE_EQ(r->stages(1).sparsegpt().owl().lambda(), 0.1);
  EXPECT_DOUBLE_EQ(r->stages(1).sparsegpt().owl().m(), 3.0);

  ExpectInvalid("stages: [{wanda: {pattern: \"2:4\", owl: {}}}]\ncalibration: {path: x}",
                "stages[0].wanda.owl: OWL allocates unstructured sparsity");
  ExpectInvalid("stages: [{sparsegpt: {sparsity: 0.9, owl: {lambda: 0.1}}}]\ncalibration: {path: x}",
                "stages[0].sparsegpt.owl.lambda: every block's sparsity (0.9 +- 2 x lambda 0.1)");
  ExpectInvalid("stages: [{wanda: {sparsity: 0.5, owl: {lambda: -0.1}}}]\ncalibration: {path: x}",
                "stages[0].wanda.owl.lambda");
  ExpectInvalid("stages: [{wanda: {sparsity: 0.5, owl: {m: -2}}}]\ncalibration: {path: x}",
                "stages[0].wanda.owl.m: must be a positive number, got -2");
  ExpectInvalid(R"(
stages: [{wanda: {sparsity: 0.5}}]
calibration: {path: x}
overrides: [{modules: ".*down_proj", stage: 0, params: {wanda: {sparsity: 0.4, owl: {}}}}]
)",
                "overrides[0].params: owl is set on the stage");
  // An override's own sparsity still applies on top of an OWL stage.
  EXPECT_TRUE(Prepare(R"(
stages: [{wanda: {sparsity: 0.5, owl: {}}}]
calibration: {path: x}
overrides: [{modules: ".*down_proj", stage: 0, params: {wanda: {sparsity: 0.4}}}]
)")
                  .ok());
}

}  // namespace
}  // namespace compressd

namespace compressd {
namespace {

// AWQ: its defaults, calibration required even for RTN, and every
// misuse refused naming the field.
TEST(RecipeStagesTest, AwqDefaultsAndRefusals) {
  absl::StatusOr<v1::Recipe> r = Prepare(R"(
stages: [{rtn: {grid: {bits: 4}, awq: {}}}]
calibration: {path: /tmp/sotu}
)");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stages(0).rtn().awq().grid_points(), 20);
  EXPECT_FALSE(r->stages(0).rtn().awq().duo_scaling());  // measured better on SmolLM2
  EXPECT_TRUE(NeedsCalibration(*r));
  EXPECT_EQ(r->calibration().samples(), 128);  // calibration defaults applied
  r = Prepare("stages: [{gptq: {grid: {bits: 3}, awq: {grid_points: 5, duo_scaling: true}}}]\n"
              "calibration: {path: x}");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stages(0).gptq().awq().grid_points(), 5);
  EXPECT_TRUE(r->stages(0).gptq().awq().duo_scaling());

  EXPECT_FALSE(r->stages(0).gptq().awq().clip());
  ExpectInvalid("stages: [{gptq: {grid: {bits: 3}, awq: {clip: true}}}]\ncalibration: {path: x}",
                "stages[0].gptq.awq.clip: clipping clamps the weights that GPTQ then takes");
  EXPECT_TRUE(Prepare("stages: [{rtn: {grid: {bits: 3}, awq: {clip: true}}}]\n"
                      "calibration: {path: x}")
                  .ok());
  ExpectInvalid("stages: [{rtn: {grid: {bits: 4}, awq: {grid_points: -3}}}]\n"
                "calibration: {path: x}",
                "stages[0].rtn.awq.grid_points: must be in [1, 1000], got -3");
  ExpectInvalid("stages: [{sparsegpt: {sparsity: 0.5}}, {gptq: {grid: {bits: 4}, awq: {}}}]\n"
                "calibration: {path: x}",
                "stages[1].gptq.awq: AWQ rescales each block before any stage runs");
  ExpectInvalid(R"(
stages: [{gptq: {grid: {bits: 4}}}]
calibration: {path: x}
overrides: [{modules: ".*down_proj", stage: 0, params: {gptq: {grid: {bits: 8}, awq: {}}}}]
)",
                "overrides[0].params: awq is set on the stage");
}

// W8A8 (activations) and SmoothQuant: defaults, and every misuse refused
// naming the field.
TEST(RecipeStagesTest, W8A8AndSmoothQuantDefaultsAndRefusals) {
  const std::string w8 = "grid: {bits: 8, group_size: -1}";
  const std::string ct = "\noutput: {format: compressed_tensors}";
  absl::StatusOr<v1::Recipe> r =
      Prepare("stages: [{rtn: {" + w8 + ", activations: {bits: 8}, smoothquant: {}}}]" + ct +
              "\ncalibration: {path: x}");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stages(0).rtn().smoothquant().alpha(), 0.5);
  EXPECT_TRUE(NeedsCalibration(*r));  // SmoothQuant reads the activations
  r = Prepare("stages: [{rtn: {" + w8 + ", activations: {bits: 8}}}]" + ct);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(NeedsCalibration(*r));  // plain W8A8 RTN needs none
  r = Prepare("stages: [{sparsegpt: {sparsity: 0.5}}, {gptq: {" + w8 +
              ", activations: {bits: 8}, smoothquant: {alpha: 0.8}}}]" + ct +
              "\ncalibration: {path: x}");
  ASSERT_TRUE(r.ok()) << r.status();  // pruned, then W8A8: the zeros are int8 zeros

  ExpectInvalid("stages: [{rtn: {" + w8 + ", activations: {bits: 4}}}]" + ct,
                "stages[0].rtn.activations.bits: must be 8");
  ExpectInvalid("stages: [{rtn: {grid: {bits: 4, group_size: 128}, activations: {bits: 8}}}]" + ct,
                "stages[0].rtn.grid: activations (W8A8) need int8 weights per channel");
  ExpectInvalid(
      "stages: [{rtn: {grid: {bits: 8, group_size: -1, asymmetric: true}, "
      "activations: {bits: 8}}}]" +
          ct,
      "stages[0].rtn.grid: activations (W8A8) need int8 weights per channel");
  ExpectInvalid("stages: [{rtn: {" + w8 + ", activations: {bits: 8}}}]",
                "output.format: activations (W8A8) are recorded only by compressed_tensors");
  ExpectInvalid("stages: [{gptq: {" + w8 + ", smoothquant: {}}}]" + ct + "\ncalibration: {path: x}",
                "stages[0].gptq.smoothquant: SmoothQuant moves activation outliers");
  ExpectInvalid("stages: [{rtn: {" + w8 + ", activations: {bits: 8}, smoothquant: {alpha: 1.5}}}]" +
                    ct + "\ncalibration: {path: x}",
                "stages[0].rtn.smoothquant.alpha: must be in [0, 1], got 1.5");
  ExpectInvalid("stages: [{rtn: {" + w8 + ", activations: {bits: 8}, smoothquant: {}, awq: {}}}]" +
                    ct + "\ncalibration: {path: x}",
                "stages[0].rtn.smoothquant: awq and smoothquant both rescale");
  ExpectInvalid("stages: [{rtn: {" + w8 + ", activations: {bits: 8}}}]" + ct +
                    "\noverrides: [{modules: \".*down_proj\", stage: 0, params: {rtn: "
                    "{grid: {bits: 4, group_size: -1}}}}]",
                "overrides[0].params.rtn.grid: activations (W8A8) need int8 weights per channel");
  ExpectInvalid("stages: [{rtn: {" + w8 + "}}]" + ct +
                    "\noverrides: [{modules: \".*down_proj\", stage: 0, params: {rtn: "
                    "{activations: {bits: 8}}}}]",
                "overrides[0].params: activations and smoothquant are set on the stage");
}

// FP8 (E4M3) grids: their defaults, fp8 W8A8, and every misuse refused naming the field.
TEST(RecipeStagesTest, Fp8GridDefaultsAndRefusals) {
  const std::string ct = "\noutput: {format: compressed_tensors}";
  absl::StatusOr<v1::Recipe> r =
      Prepare("stages: [{gptq: {grid: {type: fp8}, activations: {bits: 8}}}]" + ct +
              "\ncalibration: {path: x}");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stages(0).gptq().grid().bits(), 8);  // fp8's defaults: 8 bits, per channel
  EXPECT_EQ(r->stages(0).gptq().grid().group_size(), -1);
  EXPECT_EQ(r->stages(0).gptq().activations().type(), "fp8");  // the grid's type
  r = Prepare("stages: [{rtn: {grid: {bits: 8, group_size: -1}, activations: {bits: 8}}}]" + ct);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stages(0).rtn().activations().type(), "int");
  r = Prepare("stages: [{rtn: {grid: {type: fp8}}}]\noutput: {format: hf_safetensors}");
  ASSERT_TRUE(r.ok()) << r.status();  // weight-only fp8, written dequantized

  ExpectInvalid("stages: [{rtn: {grid: {type: fp4}}}]" + ct,
                "stages[0].rtn.grid.type: must be int or fp8 (E4M3), got \"fp4\"");
  ExpectInvalid("stages: [{rtn: {grid: {type: fp8, group_size: 128}}}]" + ct,
                "stages[0].rtn.grid.type: an fp8 (E4M3) grid is 8 bits with one scale per output");
  ExpectInvalid("stages: [{rtn: {grid: {type: fp8, asymmetric: true}}}]" + ct,
                "stages[0].rtn.grid.type: an fp8 (E4M3) grid is 8 bits");
  ExpectInvalid("stages: [{rtn: {grid: {type: fp8}}}]\noutput: {format: gguf}",
                "stages[0].rtn.grid.type: an fp8 (E4M3) grid is stored by compressed_tensors");
  ExpectInvalid("stages: [{rtn: {grid: {type: fp8}}}]\noutput: {format: gptq}",
                "gptq has no E4M3 type");
  ExpectInvalid("stages: [{evopress: {mode: bits, target: 3, grid: {type: fp8}}}]" + ct +
                    "\ncalibration: {path: x}",
                "stages[0].evopress.grid.type: evopress searches bit widths of integer grids");
  ExpectInvalid("stages: [{rtn: {grid: {type: fp8}, activations: {bits: 8, type: int}}}]" + ct,
                "stages[0].rtn.activations.type: int activations need int weights");
  ExpectInvalid(
      "stages: [{rtn: {grid: {bits: 8, group_size: -1}, activations: {bits: 8, "
      "type: fp8}}}]" +
          ct,
      "stages[0].rtn.activations.type: fp8 activations need fp8 weights");
  ExpectInvalid("stages: [{rtn: {grid: {type: fp8}, activations: {bits: 8, type: e5m2}}}]" + ct,
                "stages[0].rtn.activations.type: must be int or fp8");
  ExpectInvalid("stages: [{rtn: {grid: {bits: 8, group_size: -1}}}]" + ct +
                    "\noverrides: [{modules: \".*down_proj\", stage: 0, params: {rtn: "
                    "{grid: {type: fp8}}}}]",
                "overrides[0].params.rtn.grid.type: an override cannot change the grid's type");
}

TEST(RecipeStagesTest, SpqrDefaultsAndRefusals) {
  const std::string calib = "\ncalibration: {path: x}";
  absl::StatusOr<v1::Recipe> r = Prepare("stages: [{spqr: {}}]\noutput: {format: spqr}" + calib);
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::SpqrStage& s = r->stages(0).spqr();  // the paper's settings
  EXPECT_EQ(s.bits(), 3);
  EXPECT_EQ(s.group_size(), 16);
  EXPECT_EQ(s.stat_bits(), 3);
  EXPECT_EQ(s.stat_group(), 16);
  EXPECT_DOUBLE_EQ(s.outlier_threshold(), 0.2);
  EXPECT_TRUE(s.outliers());
  EXPECT_TRUE(s.act_order());
  EXPECT_DOUBLE_EQ(s.percdamp(), 1.0);
  EXPECT_TRUE(NeedsCalibration(*r));
  r = Prepare("stages: [{spqr: {bits: 4, outliers: false}}]" + calib);  // written dense
  ASSERT_TRUE(r.ok()) << r.status();

  ExpectInvalid("stages: [{spqr: {bits: 9}}]" + calib, "stages[0].spqr.bits: must be in [2, 8]");
  ExpectInvalid("stages: [{spqr: {stat_group: 1}}]" + calib,
                "stages[0].spqr.stat_group: must be in [2, 1024], got 1");
  ExpectInvalid("stages: [{spqr: {outlier_threshold: -1}}]" + calib,
                "stages[0].spqr.outlier_threshold: must be a positive number");
  ExpectInvalid("stages: [{spqr: {}}]\noutput: {format: gptq}" + calib,
                "output.format: gptq cannot store an spqr stage's weights");
  ExpectInvalid("stages: [{spqr: {}}]\noutput: {format: gguf}" + calib,
                "output.format: gguf cannot store an spqr stage's weights");
  ExpectInvalid("stages: [{gptq: {grid: {bits: 4}}}]\noutput: {format: spqr}" + calib,
                "output.format: spqr needs an spqr stage");
  ExpectInvalid("stages: [{wanda: {sparsity: 0.5}}, {spqr: {}}]" + calib,
                "stages[1]: spqr after the pruning of stages[0] is not supported");
  ExpectInvalid("stages: [{spqr: {}}, {rtn: {grid: {bits: 4}}}]" + calib,
                "stages[0] already quantizes");
}

}  // namespace
}  // namespace compressd
