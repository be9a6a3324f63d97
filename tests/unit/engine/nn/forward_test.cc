// The forward pass against transformers (golden fixtures from
// tests/golden/nn_reference.py) and its invariants: batching, threading, input
// validation.
#include "workers/engine/nn/forward.h"

#include <cmath>

#include "gtest/gtest.h"
#include "tests/unit/engine/nn/tiny_fixture.h"
#include "workers/engine/nn/cpu_backend.h"

namespace compressd::engine {
namespace {

using testing::LoadTinyFixture;
using testing::RandomModel;
using testing::SmallConfig;

// Tolerance vs transformers (float32 on both sides): |d| <= 1e-4 (1 + |ref|).
constexpr float kGoldenTol = 1e-4f;

class GoldenTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenTest, LogitsMatchTransformers) {
  auto fixture = LoadTinyFixture(GetParam());
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  for (int tile : {16, 128}) {
    CpuBackend backend(CpuBackendOptions{2, tile});
    auto fwd = LlamaForward::Create(&fixture->model, &backend, ForwardOptions{100});
    ASSERT_TRUE(fwd.ok()) << fwd.status();
    auto batch = SequenceBatch::Pack(fixture->sequences);
    ASSERT_TRUE(batch.ok());
    auto logits = fwd->Logits(*batch);
    ASSERT_TRUE(logits.ok()) << logits.status();
    ASSERT_EQ(logits->size(), fixture->logits.size());
    float worst = 0;
    for (size_t i = 0; i < logits->size(); ++i) {
      const float ref = fixture->logits[i];
      worst = std::max(worst, std::fabs((*logits)[i] - ref) / (1 + std::fabs(ref)));
    }
    EXPECT_LE(worst, kGoldenTol) << GetParam() << " tile " << tile;
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, GoldenTest,
                         ::testing::Values("llama_gqa", "llama3_tied", "qwen2_bias",
                                           "qwen3_qk_norm", "mistral_window",
                                           "phi3_longrope_short", "phi3_longrope_long",
                                           "gemma2_softcap", "gemma3_local_rope", "mixtral_moe",
                                           "qwen2_moe_shared", "qwen3_moe_dense_layer",
                                           "olmoe_whole_norm"));

// Gemma's attention differs per layer: a block that does not say which layer
// it is would silently attend through the wrong window.
TEST(Forward, PerLayerAttentionNeedsTheBlocksLayer) {
  auto fixture = LoadTinyFixture("gemma2_softcap");
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  CpuBackend backend(CpuBackendOptions{1, 16});
  auto fwd = LlamaForward::Create(&fixture->model, &backend);
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  auto batch = SequenceBatch::Pack({fixture->sequences[0]});
  ASSERT_TRUE(batch.ok());
  std::vector<float> hidden(batch->tokens() * fixture->model.config.hidden);
  ASSERT_TRUE(fwd->Embed(*batch, hidden.data()).ok());
  BlockWeights w = fixture->model.blocks[0];
  w.layer = -1;
  BlockWorkspace ws;
  absl::Status s = fwd->RunBlock(w, *batch, hidden.data(), &ws);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("layer index -1"), std::string::npos) << s;
}

TEST(Forward, BatchingAndThreadCountDoNotChangeResults) {
  const LlamaModel model = RandomModel(SmallConfig(), 1);
  const std::vector<std::vector<int32_t>> seqs = {testing::RandomTokens(50, 96, 2),
                                                  testing::RandomTokens(3, 96, 3)};
  CpuBackend one(CpuBackendOptions{1, 16});
  CpuBackend three(CpuBackendOptions{3, 16});
  auto f1 = LlamaForward::Create(&model, &one);
  auto f3 = LlamaForward::Create(&model, &three);
  ASSERT_TRUE(f1.ok() && f3.ok());
  auto both = f3->Logits(*SequenceBatch::Pack(seqs));
  auto first = f1->Logits(*SequenceBatch::Pack({seqs[0]}));
  auto second = f1->Logits(*SequenceBatch::Pack({seqs[1]}));
  ASSERT_TRUE(both.ok() && first.ok() && second.ok());
  std::vector<float> joined = *first;
  joined.insert(joined.end(), second->begin(), second->end());
  ASSERT_EQ(both->size(), joined.size());
  for (size_t i = 0; i < joined.size(); ++i) ASSERT_NEAR((*both)[i], joined[i], 1e-4f) << i;
}

TEST(Forward, RejectsBadShapesAndTokenIds) {
  LlamaModel model = RandomModel(SmallConfig(), 1);
  CpuBackend backend(CpuBackendOptions{1, 16});
  {
    LlamaModel broken = model;
    broken.blocks[1].k_proj.shape = {16, 64};
    auto fwd = LlamaForward::Create(&broken, &backend);
    EXPECT_EQ(fwd.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(fwd.status().message().find("blocks.1.k_proj"), std::string::npos) << fwd.status();
  }
  {
    LlamaModel broken = model;
    broken.blocks.pop_back();
    EXPECT_EQ(LlamaForward::Create(&broken, &backend).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  {
    LlamaModel broken = model;
    broken.config.n_kv_heads = 3;
    EXPECT_EQ(LlamaForward::Create(&broken, &backend).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  auto fwd = LlamaForward::Create(&model, &backend);
  ASSERT_TRUE(fwd.ok());
  auto bad = fwd->Logits(*SequenceBatch::Pack({{1, 2, 96}}));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("token id 96"), std::string::npos) << bad.status();
  EXPECT_EQ(SequenceBatch::Pack({}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SequenceBatch::Pack({{1}, {}}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Forward, LmHeadChunksCoverTheVocabularyOnceAndPropagateErrors) {
  const LlamaModel model = RandomModel(SmallConfig(), 4);
  CpuBackend backend(CpuBackendOptions{2, 16});
  auto fwd = LlamaForward::Create(&model, &backend, ForwardOptions{40});
  ASSERT_TRUE(fwd.ok());
  std::vector<float> normed(3 * 64, 0.5f);
  std::vector<int64_t> seen;
  ASSERT_TRUE(fwd->LmHeadChunks(normed.data(), 3,
                                [&](int64_t v0, int64_t n, const float*) {
                                  seen.push_back(v0);
                                  seen.push_back(n);
                                  return absl::OkStatus();
                                })
                  .ok());
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 40, 40, 40, 80, 16}));
  auto st = fwd->LmHeadChunks(normed.data(), 3, [](int64_t, int64_t, const float*) {
    return absl::CancelledError("stop");
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace compressd::engine
