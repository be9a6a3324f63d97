// OWL (calib/owl.h): the allocation formula, the outlier ratio on a block
// whose scores are known, and a calibrated run whose blocks are pruned at the
// allocation it reports.
#include "workers/engine/calib/owl.h"

#include <algorithm>
#include <mutex>
#include <numeric>

#include "common/recipe.h"
#include "common/recipe_spec.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/nn/tiny_fixture.h"
#include "workers/engine/nn/cpu_backend.h"
#include "workers/engine/pipeline/targets.h"

namespace compressd::engine {
namespace {

class Recorder : public EventSink {
 public:
  void Emit(const v1::JobEvent& e) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (e.has_metric() && e.metric().name() == "owl_sparsity") owl_metrics += 1;
  }
  int owl_metrics = 0;

 private:
  std::mutex mu_;
};

TEST(OwlTest, AllocationKeepsTheMeanAndSpansTwoLambda) {
  // R = 1, 2, 3: D = 0, 0.1, 0.2 (lambda 0.1), mean 0.1.
  const std::vector<double> s = OwlSparsities({1, 2, 3}, 0.5, 0.1);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_NEAR(s[0], 0.6, 1e-12);
  EXPECT_NEAR(s[1], 0.5, 1e-12);
  EXPECT_NEAR(s[2], 0.4, 1e-12);
  // Equal ratios: uniform. No blocks: nothing.
  for (double v : OwlSparsities({0.7, 0.7}, 0.6, 0.08)) EXPECT_DOUBLE_EQ(v, 0.6);
  EXPECT_TRUE(OwlSparsities({}, 0.5, 0.1).empty());
  // Skewed ratios: the mean is still S, the extremes 2 lambda apart (one
  // block far above the rest is pruned far below S, the rest a little above).
  const std::vector<double> k = OwlSparsities({0.5, 0.6, 0.55, 2.5, 0.4}, 0.7, 0.08);
  EXPECT_NEAR(std::accumulate(k.begin(), k.end(), 0.0) / k.size(), 0.7, 1e-12);
  const auto [lo, hi] = std::minmax_element(k.begin(), k.end());
  EXPECT_NEAR(*hi - *lo, 0.16, 1e-12);
  EXPECT_EQ(lo - k.begin(), 3);  // most outliers: pruned least
  EXPECT_EQ(hi - k.begin(), 4);
  EXPECT_LT(*lo, 0.7 - 0.08);
}

// Blocks of different sizes: the mean is weighted by their targeted weights
// (the model's sparsity stays S), and a block with none takes no part.
TEST(OwlTest, AllocationWeightsBlocksByTheirTargetedWeights) {
  // R = 1, 3, 9 (ignored: no weights); D = 0, 0.2; weighted mean (1:3) 0.15.
  const std::vector<double> s = OwlSparsities({1, 3, 9}, 0.5, 0.1, {100, 300, 0});
  ASSERT_EQ(s.size(), 3u);
  EXPECT_NEAR(s[0], 0.65, 1e-12);
  EXPECT_NEAR(s[1], 0.45, 1e-12);
  EXPECT_DOUBLE_EQ(s[2], 0.5);
  EXPECT_NEAR((100 * s[0] + 300 * s[1]) / 400, 0.5, 1e-12);
  // Equal weights are the unweighted formula.
  const std::vector<double> e = OwlSparsities({1, 2, 3}, 0.5, 0.1, {7, 7, 7});
  EXPECT_NEAR(e[0], 0.6, 1e-12);
  EXPECT_NEAR(e[2], 0.4, 1e-12);
}

TEST(OwlTest, OutlierRatioCountsScoresAboveMTimesTheMean) {
  // One 2 x 4 linear; two tokens whose column norms are 1, 1, 2, 0: scores
  // |w| * norm = {1, 1, 2, 0, 1, 1, 20, 0}, mean 3.25.
  std::vector<float> w = {1, 1, 1, 5, 1, 1, 10, 7};
  std::vector<float> x = {1, 0, 2, 0, 0, 1, 0, 0};
  Tensor t = Tensor::Owned({2, 4}, w);
  BlockLinear l;
  l.tensor = &t;
  l.input = 0;
  LinearInputs in;
  in.tokens = 2;
  in.attn_in = x.data();
  const std::vector<double> p = BlockOutlierPercent({&l}, in, {1.0, 5.0, 7.0});
  EXPECT_DOUBLE_EQ(p[0], 100.0 * 1 / 8);  // > 3.25: only the 20
  EXPECT_DOUBLE_EQ(p[1], 100.0 * 1 / 8);  // > 16.25
  EXPECT_DOUBLE_EQ(p[2], 0.0);            // > 22.75
}

// Runs wanda with OWL (lambda 0.2, m 2) on `dense` and checks every target of
// block l was pruned at the s_l the run reports.
void ExpectPrunedAtTheAllocation(const LlamaModel& dense) {
  CalibrationSet calib;
  calib.name = "test";
  for (int s = 0; s < 4; ++s) {
    calib.sequences.push_back(testing::RandomTokens(32, dense.config.vocab, 200 + s));
  }
  absl::StatusOr<v1::Recipe> recipe =
      ParseRecipeText("stages: [{wanda: {sparsity: 0.5, owl: {lambda: 0.2, m: 2}}}]\n"
                      "calibration: {path: x}");
  ASSERT_TRUE(recipe.ok()) << recipe.status();
  ApplyRecipeDefaults(&*recipe);
  ASSERT_TRUE(ValidateRecipe(*recipe).ok());
  LlamaModel model = dense;
  absl::StatusOr<std::vector<ModelTarget>> targets =
      SelectModelTargets(model, *CompileRecipe(*recipe));
  ASSERT_TRUE(targets.ok()) << targets.status();
  CpuBackend backend(CpuBackendOptions{1, 128});
  Recorder events;
  CancelToken cancel;
  CompressionResult result;
  const absl::Status status = CompressCalibrated(model, backend, *recipe, *targets, calib, 1,
                                                 nullptr, events, cancel, &result);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(result.owl.is_array());
  ASSERT_EQ(result.owl.size(), 1u);
  const nlohmann::json& blocks = result.owl[0]["blocks"];
  ASSERT_EQ(blocks.size(), dense.blocks.size());
  EXPECT_EQ(events.owl_metrics, static_cast<int>(dense.blocks.size()));
  double lo = 1, hi = 0;
  for (const nlohmann::json& layer : result.layers) {
    int block = -1;
    ASSERT_EQ(std::sscanf(layer["name"].get<std::string>().c_str(), "model.layers.%d.", &block), 1);
    const double want = blocks[block]["sparsity"];
    // Wanda prunes round(s * cols) of each row.
    const double cols = layer["shape"][1];
    EXPECT_NEAR(layer["sparsity"].get<double>(), want, 0.5 / cols + 1e-9) << layer["name"];
    lo = std::min(lo, want);
    hi = std::max(hi, want);
  }
  EXPECT_NEAR(hi - lo, 0.4, 1e-9);  // the extreme blocks are 2 lambda apart
}

TEST(OwlTest, CalibratedRunPrunesEachBlockAtItsAllocation) {
  ExpectPrunedAtTheAllocation(testing::RandomModel(testing::SmallConfig(), 11));
}

// Mixtures of experts: the experts' scores use the tokens routed to them.
class OwlMoeTest : public ::testing::TestWithParam<const char*> {};

TEST_P(OwlMoeTest, CalibratedRunPrunesEachBlockAtItsAllocation) {
  absl::StatusOr<testing::TinyFixture> fixture = testing::LoadTinyFixture(GetParam());
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  ExpectPrunedAtTheAllocation(fixture->model);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, OwlMoeTest,
                         ::testing::Values("mixtral_moe", "qwen2_moe_shared"));

}  // namespace
}  // namespace compressd::engine
