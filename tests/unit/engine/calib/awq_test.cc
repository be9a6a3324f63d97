// AWQ (calib/awq.h): the search against the independent PyTorch reference of
// tests/golden/awq_fixtures.py on real SmolLM2 groups, its guarantees on a
// problem with a salient input channel, and the folding: a model whose every
// group is rescaled (no quantization) computes the same logits, on every
// family the engine runs (norm offsets, biases, MoE routers and experts).
#include "workers/engine/calib/awq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/engine/calib/awq_golden.h"
#include "tests/unit/engine/calib/calib_testing.h"
#include "tests/unit/engine/nn/tiny_fixture.h"
#include "workers/engine/calib/block_linears.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/nn/forward.h"

namespace compressd::engine {
namespace {

class AwqGoldenTest : public ::testing::TestWithParam<const char*> {};

// The reference computes errors from X in float64, we from H in float32: the
// candidates' errors agree to 1e-3 relative, and ours picks one whose
// reference error is the reference's minimum up to that tolerance.
TEST_P(AwqGoldenTest, SearchMatchesTheReference) {
  const std::string stem = std::string("awq_") + GetParam();
  const testing::AwqGolden g = testing::LoadAwqGolden(GetParam());
  const nlohmann::json& fix = g.fix;
  const int64_t cols = g.cols;
  const float* w = g.w();
  const float* h = g.h();
  const float* x_mean = g.x_mean();
  std::vector<AwqWeight> linears;
  int64_t at = 0;
  for (const auto& r : fix["rows"]) {
    linears.push_back({w + at * cols, r.get<int64_t>()});
    at += r.get<int64_t>();
  }
  for (const nlohmann::json& c : fix["configs"]) {
    AwqOptions o;
    o.grid = QuantGrid{c["bits"], c["group_size"], c["symmetric"], 0};
    o.grid_points = c["grid_points"];
    o.duo_scaling = c["duo_scaling"];
    absl::StatusOr<AwqSearchResult> r = AwqSearch(linears, h, x_mean, cols, o, stem);
    ASSERT_TRUE(r.ok()) << r.status();
    const std::vector<double> ref = c["errors"];
    ASSERT_EQ(r->errors.size(), ref.size());
    for (size_t k = 0; k < ref.size(); ++k) {
      EXPECT_NEAR(r->errors[k], ref[k], 1e-3 * ref[k]) << stem << " " << c["bits"] << " k " << k;
    }
    const size_t ours = static_cast<size_t>(std::min_element(r->errors.begin(), r->errors.end()) -
                                            r->errors.begin());
    const size_t best = c["best"];
    EXPECT_LE(ref[ours], ref[best] * (1 + 1e-3)) << stem << " chose " << ours << " not " << best;
    EXPECT_EQ(r->alpha < 0, ours == 0);
    if (ours == best) {
      const std::vector<float> s = c["scales"];
      for (int64_t j = 0; j < cols; ++j) {
        EXPECT_NEAR(r->scales[j], s[j], 1e-5 * s[j] + 1e-7) << stem << " input " << j;
      }
    }
    // On real layers AWQ does better than plain RTN (the paper's point).
    EXPECT_LT(r->error, r->error_unscaled) << stem << " " << c["bits"];
  }
}

INSTANTIATE_TEST_SUITE_P(RealLayers, AwqGoldenTest, ::testing::Values("l0_qkv", "l5_down"));

// One input channel 30x larger than the rest: scaling it up must cut the
// error, and the chosen candidate is the minimum of the reported errors.
TEST(AwqTest, SalientChannelIsProtected) {
  const int64_t rows = 32, cols = 64, tokens = 512;
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0, 1);
  std::vector<float> w(rows * cols), x(tokens * cols);
  for (float& v : w) v = n(rng);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < cols; ++j) x[t * cols + j] = n(rng) * (j == 5 ? 30.0f : 1.0f);
  }
  std::vector<float> h(cols * cols, 0), x_mean(cols, 0);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < cols; ++i) {
      x_mean[i] += std::fabs(x[t * cols + i]) / tokens;
      for (int64_t j = 0; j < cols; ++j)
        h[i * cols + j] += 2 * x[t * cols + i] * x[t * cols + j] / tokens;
    }
  }
  AwqOptions o;
  o.grid = QuantGrid{3, 32, true, 0};
  o.duo_scaling = false;  // the paper's s = mean|x|^a: channel 5 gets the largest scale
  absl::StatusOr<AwqSearchResult> r =
      AwqSearch({{w.data(), rows}}, h.data(), x_mean.data(), cols, o, "salient");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->errors.size(), 21u);
  EXPECT_DOUBLE_EQ(r->error, *std::min_element(r->errors.begin(), r->errors.end()));
  EXPECT_GE(r->alpha, 0.0);
  EXPECT_LT(r->error, 0.8 * r->error_unscaled);
  EXPECT_EQ(*std::max_element(r->scales.begin(), r->scales.end()), r->scales[5]);
}

// Folds every group of `model` with scales that are not 1 (the unscaled
// candidate excluded), without quantizing; the summary entries it returns.
nlohmann::json FoldAll(LlamaModel* model, const std::vector<std::vector<int32_t>>& seqs) {
  CpuBackend backend(CpuBackendOptions{1, 64});
  absl::StatusOr<std::unique_ptr<BlockRunner>> runner =
      BlockRunner::Create(model, &backend, seqs, BlockRunnerOptions{});
  EXPECT_TRUE(runner.ok()) << runner.status();
  nlohmann::json entries = nlohmann::json::array();
  AwqOptions o;
  o.grid = QuantGrid{3, -1, true, 0};
  o.grid_points = 4;
  o.unscaled_candidate = false;
  const absl::Status s = (*runner)->RunAll([&](int i, const LinearInputs& in, BlockWeights* w) {
    std::set<std::string> targets;
    for (const BlockLinear& l : BlockLinearsOf(model->config, w->layer >= 0 ? w->layer : i, w)) {
      targets.insert(l.module);
    }
    std::vector<Tensor*> changed;
    absl::StatusOr<nlohmann::json> e = AwqBlock(model->config, w->layer >= 0 ? w->layer : i, w, in,
                                                o, targets, DefaultCpuSolver(), &changed);
    if (!e.ok()) return e.status();
    for (const nlohmann::json& x : *e) entries.push_back(x);
    return in.refresh();
  });
  EXPECT_TRUE(s.ok()) << s;
  return entries;
}

std::vector<float> Logits(LlamaModel* model, const std::vector<std::vector<int32_t>>& seqs) {
  return ::compressd::testing::TinyLogits(model, seqs);
}

// Every block gets at least three folded groups (attention norm, MLP norm,
// up_proj rows or, MoE, an expert's), and those of `folded` where named.
void ExpectFoldingIsExact(LlamaModel dense, const std::vector<std::string>& folded) {
  std::vector<std::vector<int32_t>> seqs;
  for (int s = 0; s < 3; ++s) seqs.push_back(testing::RandomTokens(24, dense.config.vocab, 40 + s));
  const std::vector<float> want = Logits(&dense, seqs);
  LlamaModel model = dense;
  const nlohmann::json entries = FoldAll(&model, seqs);
  std::vector<int> per_block(dense.blocks.size(), 0);
  for (const nlohmann::json& e : entries) {
    if (!e["alpha"].is_null()) ++per_block[e["block"].get<size_t>()];
  }
  for (size_t b = 0; b < per_block.size(); ++b) EXPECT_GE(per_block[b], 3) << "block " << b;
  for (const std::string& kind : folded) {
    bool seen = false;
    for (const nlohmann::json& e : entries) {
      seen |= e["folded_into"].get<std::string>().find(kind) != std::string::npos &&
              !e["alpha"].is_null();
    }
    EXPECT_TRUE(seen) << "no group folded into " << kind << ": " << entries.dump();
  }
  EXPECT_LE(::compressd::testing::WorstRelative(Logits(&model, seqs), want), 2e-4f);
}

TEST(AwqTest, FoldingKeepsTheOutputsWithMultiHeadAttention) {
  LlamaConfig c = testing::SmallConfig();
  c.n_kv_heads = c.n_heads;  // v_proj's rows feed o_proj: that group is folded too
  ExpectFoldingIsExact(testing::RandomModel(c, 3),
                       {"input_layernorm", "v_proj", "post_attention_layernorm", "up_proj"});
}

class AwqFamilyTest : public ::testing::TestWithParam<const char*> {};

TEST_P(AwqFamilyTest, FoldingKeepsTheOutputs) {
  absl::StatusOr<testing::TinyFixture> fixture = testing::LoadTinyFixture(GetParam());
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  ExpectFoldingIsExact(fixture->model, {"input_layernorm"});
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AwqFamilyTest,
                         ::testing::Values("llama_gqa", "qwen2_bias", "qwen3_qk_norm",
                                           "gemma2_softcap", "phi3_longrope_short", "mixtral_moe",
                                           "qwen2_moe_shared", "olmoe_whole_norm"));

}  // namespace
}  // namespace compressd::engine
