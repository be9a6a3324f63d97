// modules_in_block_to_quantize (gptq_export_internal.h) over mixture-of-experts
// blocks: which projections are block projections, how experts are grouped,
// and which mismatches between blocks are refused.
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "workers/engine/export/gptq_export_internal.h"

namespace compressd::engine {
namespace {

// modules_in_block_to_quantize over experts: an expert's gate/up with the
// MLP's gate/up, its down with down; a module a block lacks (Qwen-MoE's dense
// layer has no experts, its MoE layers no mlp.gate_proj) is no mismatch, but
// one a block has and leaves dense is.
TEST(GptqExportTest, BlockModulesGroupExpertsAndAllowLayersWithoutThem) {
  using gptq_export_internal::BlockModules;
  using gptq_export_internal::ParseBlockProjection;
  int64_t layer = 0;
  std::string projection;
  EXPECT_TRUE(ParseBlockProjection("model.layers.3.block_sparse_moe.experts.7.w2.weight", &layer,
                                   &projection));
  EXPECT_EQ(projection, "block_sparse_moe.experts.7.w2");
  EXPECT_TRUE(ParseBlockProjection("model.layers.0.mlp.shared_expert.up_proj.weight", &layer,
                                   &projection));
  EXPECT_FALSE(ParseBlockProjection("model.layers.0.mlp.gate.weight", &layer, &projection));
  const std::set<std::string> moe = {"self_attn.q_proj", "mlp.experts.0.gate_proj",
                                     "mlp.experts.0.down_proj", "mlp.experts.1.up_proj"};
  const std::set<std::string> dense = {"self_attn.q_proj", "mlp.gate_proj", "mlp.down_proj"};
  absl::StatusOr<nlohmann::json> m = BlockModules({dense, moe}, {dense, moe});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, nlohmann::json::parse(R"([["self_attn.q_proj"],
      ["mlp.gate_proj", "mlp.experts.0.gate_proj", "mlp.experts.1.up_proj"],
      ["mlp.down_proj", "mlp.experts.0.down_proj"]])"));
  // A module no block quantizes may stay dense anywhere.
  std::set<std::string> present = moe;
  present.insert("mlp.experts.1.gate_proj");
  EXPECT_TRUE(BlockModules({moe, moe}, {moe, present}).ok());
  std::set<std::string> one_expert = moe;
  one_expert.erase("mlp.experts.1.up_proj");
  absl::Status s = BlockModules({moe, one_expert}, {moe, moe}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), ::testing::HasSubstr(
                               "model.layers.1.mlp.experts.1.up_proj is not quantized but "
                               "model.layers.0.mlp.experts.1.up_proj is"));
}

}  // namespace
}  // namespace compressd::engine
