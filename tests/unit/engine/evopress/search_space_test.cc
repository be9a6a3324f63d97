#include "workers/engine/evopress/search_space.h"

#include <map>
#include <random>
#include <set>

#include "common/recipe.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/evopress/evopress_fixture.h"

namespace compressd::engine::evopress {
namespace {

using testing::AllModules;
using testing::TestModel;

v1::EvoPressStage Stage(const std::string& mode, double target, std::vector<double> levels) {
  v1::EvoPressStage s;
  s.set_mode(mode);
  s.set_target(target);
  for (double l : levels) s.add_levels(l);
  return s;
}

SearchSpace Space(const std::string& mode, double target, std::vector<double> levels) {
  absl::StatusOr<SearchSpace> s =
      MakeSearchSpace(TestModel(), AllModules(4), Stage(mode, target, levels));
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

TEST(SearchSpaceTest, GroupsLayersByProjection) {
  const SearchSpace s = Space("sparsity", 0.5, {0.3, 0.4, 0.5, 0.6, 0.7});
  ASSERT_EQ(s.units.size(), 28u);
  ASSERT_EQ(s.groups.size(), 7u);
  for (const auto& g : s.groups) {
    ASSERT_EQ(g.size(), 4u);
    for (int u : g) EXPECT_EQ(s.units[u].numel, s.units[g[0]].numel);
  }
  EXPECT_EQ(s.group_names[6], "mlp.down_proj");
}

TEST(SearchSpaceTest, RejectsNonBlockTargets) {
  absl::StatusOr<SearchSpace> s =
      MakeSearchSpace(TestModel(), {"model.embed_tokens"}, Stage("sparsity", 0.5, {0.5}));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("model.embed_tokens"), std::string::npos);
}

TEST(SearchSpaceTest, InitialConfigAtTheTargetLevel) {
  const SearchSpace s = Space("sparsity", 0.5, {0.3, 0.4, 0.5, 0.6, 0.7});
  std::mt19937_64 rng(1);
  absl::StatusOr<Config> c = InitialConfig(s, 0.5, rng);
  ASSERT_TRUE(c.ok());
  for (int l : *c) EXPECT_EQ(l, 2);
  EXPECT_NEAR(MeanLevel(s, *c), 0.5, 1e-12);
  EXPECT_EQ(InitialConfig(s, 0.75, rng).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SearchSpaceTest, FractionalTargetMixesAdjacentLevelsPerGroup) {
  const SearchSpace s = Space("bits", 2.5, {2, 3, 4, 5});
  std::mt19937_64 rng(3);
  absl::StatusOr<Config> c = InitialConfig(s, 2.5, rng);
  ASSERT_TRUE(c.ok());
  for (const auto& g : s.groups) {
    int at3 = 0;
    for (int u : g) {
      EXPECT_TRUE((*c)[u] == 0 || (*c)[u] == 1);
      at3 += (*c)[u] == 1;
    }
    EXPECT_EQ(at3, 2);  // half of each group of 4
  }
  EXPECT_NEAR(MeanLevel(s, *c), 2.5, 1e-12);
}

TEST(SearchSpaceTest, EveryMutationKeepsTheBudgetExactly) {
  SearchSpace s = Space("sparsity", 0.5, {0.3, 0.4, 0.5, 0.6, 0.7});
  std::mt19937_64 rng(5);
  Config c = *InitialConfig(s, 0.5, rng);
  const std::vector<int64_t> sums = GroupLevelSums(s, c);
  const double mean = MeanLevel(s, c);
  std::map<int, int> changed_counts;
  for (int i = 0; i < 2000; ++i) {
    Config child = Mutate(s, c, rng);
    ASSERT_EQ(GroupLevelSums(s, child), sums) << "mutation " << i;
    ASSERT_NEAR(MeanLevel(s, child), mean, 1e-12);
    int changed = 0;
    for (size_t u = 0; u < c.size(); ++u) {
      ASSERT_GE(child[u], 0);
      ASSERT_LT(child[u], 5);
      changed += child[u] != c[u];
    }
    ++changed_counts[changed];
    c = child;  // walk: budget must hold along the whole chain
  }
  // Biased to one switch (two units changed).
  EXPECT_GT(changed_counts[2], changed_counts[4]);
  EXPECT_GT(changed_counts[4], changed_counts[6]);
}

TEST(SearchSpaceTest, MaxLevelShiftBoundsEveryUnit) {
  SearchSpace s = Space("sparsity", 0.5, {0.3, 0.4, 0.5, 0.6, 0.7});
  std::mt19937_64 rng(9);
  const Config initial = *InitialConfig(s, 0.5, rng);
  SetLevelBounds(initial, 1, &s);
  Config c = initial;
  for (int i = 0; i < 2000; ++i) {
    c = Mutate(s, c, rng);
    for (int l : c) ASSERT_TRUE(l >= 1 && l <= 3) << l;
  }
}

TEST(SearchSpaceTest, DropModeSwapsWithinSubBlockType) {
  v1::EvoPressStage stage = Stage("drop", 0.5, {});
  stage.set_drop_mlp(true);
  absl::StatusOr<SearchSpace> s = MakeSearchSpace(TestModel(), {}, stage);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->units.size(), 4u);  // MLP halves only
  EXPECT_FALSE(s->units[0].attention);
  std::mt19937_64 rng(2);
  Config c = *InitialConfig(*s, 0.5, rng);
  EXPECT_EQ(GroupLevelSums(*s, c), std::vector<int64_t>{2});
  for (int i = 0; i < 200; ++i) {
    c = Mutate(*s, c, rng);
    ASSERT_EQ(GroupLevelSums(*s, c), std::vector<int64_t>{2});
  }
}

TEST(SearchSpaceTest, HashAndStringDistinguishConfigs) {
  const SearchSpace s = Space("bits", 3, {2, 3, 4});
  Config a(s.units.size(), 1), b = a;
  b[0] = 2;
  b[1] = 0;
  EXPECT_NE(ConfigHash(a), ConfigHash(b));
  EXPECT_EQ(ConfigHash(a), ConfigHash(Config(s.units.size(), 1)));
  EXPECT_NE(ConfigString(s, a), ConfigString(s, b));
}

absl::StatusOr<v1::Recipe> Recipe(const std::string& evopress) {
  ASSIGN_OR_RETURN(v1::Recipe r, ParseRecipeText("stages:\n  - evopress: " + evopress +
                                                 "\ncalibration: {path: /x}\n"));
  ApplyRecipeDefaults(&r);
  RETURN_IF_ERROR(ValidateRecipe(r));
  return r;
}

TEST(EvoPressRecipeTest, DefaultLevelsAreEquallySpacedAroundTheTarget) {
  absl::StatusOr<v1::Recipe> r = Recipe("{mode: sparsity, target: 0.6}");
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& levels = r->stages(0).evopress().levels();
  EXPECT_EQ(std::vector<double>(levels.begin(), levels.end()),
            (std::vector<double>{0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8}));
  r = Recipe("{mode: sparsity, target: 0.8}");  // clipped at 0.9
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stages(0).evopress().levels_size(), 7);
  r = Recipe("{mode: bits, target: 3.5}");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stages(0).evopress().levels_size(), 5);
  EXPECT_EQ(r->stages(0).evopress().database(), "sequential");
  r = Recipe("{mode: bits, target: 3.5, database: dense_inputs}");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stages(0).evopress().database(), "dense_inputs");
}

TEST(EvoPressRecipeTest, RejectsBadLevels) {
  for (const char* bad :
       {"{mode: sparsity, target: 0.5, levels: [0.3, 0.5, 0.6]}",
        "{mode: sparsity, target: 0.9, levels: [0.3, 0.5]}",
        "{mode: bits, target: 3, levels: [2, 3.5]}", "{mode: bits, target: 3, levels: [4, 3]}",
        "{mode: sparsity, target: 0.5, survivors: [2, 0], step_tokens: [8, 8]}",
        "{mode: sparsity, target: 0.5, database: layerwise}"}) {
    EXPECT_EQ(Recipe(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace compressd::engine::evopress
