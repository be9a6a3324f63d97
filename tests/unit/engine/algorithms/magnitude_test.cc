#include "workers/engine/algorithms/magnitude.h"

#include <cmath>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compressd::engine {
namespace {

using ::testing::HasSubstr;

std::vector<float> RandomWeights(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> w(n);
  for (float& x : w) x = dist(rng);
  return w;
}

TEST(MagnitudeTest, UnstructuredZeroesExactCountOfSmallest) {
  for (double s : {0.1, 0.5, 0.77, 0.999}) {
    std::vector<float> w = RandomWeights(1000, 1);
    const std::vector<float> orig = w;
    ASSERT_TRUE(PruneUnstructured(w.data(), w.size(), s, "t").ok());
    const size_t k = static_cast<size_t>(std::llround(s * 1000));
    EXPECT_EQ(CountZeros(w.data(), w.size()), k) << s;
    // Every kept weight is unchanged and at least as large as every pruned one.
    float max_pruned = 0, min_kept = INFINITY;
    for (size_t i = 0; i < w.size(); ++i) {
      if (w[i] == 0) {
        max_pruned = std::max(max_pruned, std::fabs(orig[i]));
      } else {
        EXPECT_EQ(w[i], orig[i]);
        min_kept = std::min(min_kept, std::fabs(orig[i]));
      }
    }
    EXPECT_LE(max_pruned, min_kept);
  }
}

TEST(MagnitudeTest, UnstructuredRoundsCountToNearest) {
  std::vector<float> w = RandomWeights(7, 2);
  ASSERT_TRUE(PruneUnstructured(w.data(), w.size(), 0.5, "t").ok());
  EXPECT_EQ(CountZeros(w.data(), w.size()), 4u);  // round(3.5) = 4
}

TEST(MagnitudeTest, TiesBrokenByIndexLowerFirst) {
  // Magnitudes all equal (mixed signs): the lowest indices are pruned.
  std::vector<float> w = {1, -1, 1, -1, 1, -1, 1, -1};
  ASSERT_TRUE(PruneUnstructured(w.data(), w.size(), 0.375, "t").ok());  // 3 zeros
  EXPECT_EQ(w, (std::vector<float>{0, 0, 0, -1, 1, -1, 1, -1}));
  // Ties at the threshold only: 0.5 is smaller, then the first 2 of the 1s.
  std::vector<float> v = {1, 2, 1, 0.5f, 1, 3};
  ASSERT_TRUE(PruneUnstructured(v.data(), v.size(), 0.5, "t").ok());
  EXPECT_EQ(v, (std::vector<float>{0, 2, 0, 0, 1, 3}));
}

TEST(MagnitudeTest, FastPathMatchesReferenceWithManyTies) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    std::mt19937 rng(seed);
    std::vector<float> w(4096);
    for (float& x : w) x = static_cast<float>(static_cast<int>(rng() % 9) - 4);  // heavy ties
    std::vector<float> ref = w;
    const double s = (seed % 9 + 1) / 10.0;
    ASSERT_TRUE(PruneUnstructured(w.data(), w.size(), s, "t").ok());
    PruneUnstructuredRef(ref.data(), ref.size(), s);
    ASSERT_EQ(w, ref) << "seed " << seed;
  }
}

TEST(MagnitudeTest, NaNIsKeptAndInvalidSparsityRejected) {
  std::vector<float> w = {NAN, 0.1f, 0.2f, 0.3f};
  ASSERT_TRUE(PruneUnstructured(w.data(), w.size(), 0.75, "t").ok());
  EXPECT_TRUE(std::isnan(w[0]));
  EXPECT_EQ(CountZeros(w.data(), w.size()), 3u);
  absl::Status st = PruneUnstructured(w.data(), w.size(), 1.5, "layer.x");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("layer.x"));
}

TEST(MagnitudeTest, NMKeepsNLargestInEveryGroup) {
  const int64_t rows = 16, cols = 32;
  for (auto [n, m] : {std::pair{2, 4}, {1, 4}, {4, 8}, {3, 16}}) {
    std::vector<float> w = RandomWeights(rows * cols, 3);
    const std::vector<float> orig = w;
    std::vector<float> ref = w;
    ASSERT_TRUE(PruneNM(w.data(), rows, cols, n, m, "t").ok());
    PruneNMRef(ref.data(), rows, cols, n, m);
    EXPECT_EQ(w, ref);
    for (int64_t g = 0; g < rows * cols; g += m) {
      int zeros = 0;
      float min_kept = INFINITY, max_pruned = 0;
      for (int j = 0; j < m; ++j) {
        if (w[g + j] == 0) {
          ++zeros;
          max_pruned = std::max(max_pruned, std::fabs(orig[g + j]));
        } else {
          min_kept = std::min(min_kept, std::fabs(w[g + j]));
        }
      }
      ASSERT_EQ(zeros, m - n) << n << ":" << m << " group " << g;
      ASSERT_LE(max_pruned, min_kept);
    }
  }
}

TEST(MagnitudeTest, NMTiesAndExistingZeros) {
  std::vector<float> w = {1, 1, 1, 1, 0, 0, 0, 5};
  ASSERT_TRUE(PruneNM(w.data(), 1, 8, 2, 4, "t").ok());
  EXPECT_EQ(w, (std::vector<float>{0, 0, 1, 1, 0, 0, 0, 5}));  // at least M-N zeros
}

TEST(MagnitudeTest, NMRejectsIndivisibleInputDimension) {
  std::vector<float> w(3 * 6, 1.0f);
  absl::Status st = PruneNM(w.data(), 3, 6, 2, 4, "model.layers.0.mlp.up_proj");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("model.layers.0.mlp.up_proj"));
  EXPECT_THAT(st.message(), HasSubstr("not a multiple of M=4"));
  EXPECT_EQ(CountZeros(w.data(), w.size()), 0u);
}

TEST(MagnitudeTest, ParsePatternAndApplyStage) {
  // The one N:M parser (common/recipe_spec.h), also used by recipe validation.
  absl::StatusOr<NMPattern> p = ParseNMPattern("2:4", "pattern");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->n, 2);
  EXPECT_EQ(p->m, 4);
  EXPECT_FALSE(ParseNMPattern("", "pattern")->set());
  for (const char* bad : {"4:2", "0:4", "2:65", "2-4", "2:", "a:b", "2:4:8", " 2:4", "+2:4"}) {
    EXPECT_EQ(ParseNMPattern(bad, "pattern").status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  std::vector<float> w = RandomWeights(64, 4);
  ASSERT_TRUE(ApplyMagnitude(0, NMPattern{1, 4}, w.data(), 4, 16, "t").ok());
  EXPECT_EQ(CountZeros(w.data(), w.size()), 48u);
  EXPECT_EQ(ApplyMagnitude(1.5, NMPattern{}, w.data(), 4, 16, "t").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TargetMatcherTest, IncludeIgnoreFullMatch) {
  v1::Targets targets;
  targets.set_include(".*_proj$");
  targets.add_ignore(".*\\.mlp\\.down_proj");
  targets.add_ignore("model\\.layers\\.1\\..*");
  absl::StatusOr<TargetMatcher> m = TargetMatcher::Create(targets);
  ASSERT_TRUE(m.ok()) << m.status();
  auto is = [&](const std::string& name, std::vector<int64_t> shape = {4, 4}) {
    return *m->IsTarget(name, shape);
  };
  EXPECT_TRUE(is("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_TRUE(is("model.layers.0.mlp.up_proj.weight"));
  EXPECT_FALSE(is("model.layers.0.mlp.down_proj.weight"));           // ignored
  EXPECT_FALSE(is("model.layers.1.self_attn.q_proj.weight"));        // ignored
  EXPECT_FALSE(is("model.layers.0.self_attn.q_proj.bias"));          // not a weight
  EXPECT_FALSE(is("model.layers.0.self_attn.q_proj.weight", {16}));  // not 2-D
  EXPECT_FALSE(is("lm_head.weight"));
  EXPECT_FALSE(is("model.embed_tokens.weight"));
}

TEST(TargetMatcherTest, FullMatchNotSearch) {
  v1::Targets targets;
  targets.set_include("q_proj");  // would match as a substring, but must not
  absl::StatusOr<TargetMatcher> m = TargetMatcher::Create(targets);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(*m->IsTarget("model.layers.0.self_attn.q_proj.weight", {4, 4}));
  EXPECT_TRUE(*m->IsTarget("q_proj.weight", {4, 4}));
  EXPECT_EQ(*TargetMatcher::ModuleName("a.b.weight"), "a.b");
  EXPECT_FALSE(TargetMatcher::ModuleName(".weight").has_value());
}

TEST(TargetMatcherTest, InvalidRegexNamesField) {
  v1::Targets targets;
  targets.set_include(".*");
  targets.add_ignore("ok");
  targets.add_ignore("([unclosed");
  absl::Status st = TargetMatcher::Create(targets).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("targets.ignore[1]"));
  targets.set_include("(");
  EXPECT_THAT(TargetMatcher::Create(targets).status().message(), HasSubstr("targets.include"));
}

}  // namespace
}  // namespace compressd::engine
