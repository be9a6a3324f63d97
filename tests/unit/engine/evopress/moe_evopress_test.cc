// EvoPress over mixture-of-experts models: every expert's projections are
// units of their own, grouped by projection over all experts and layers (the
// budget trades between experts), and a dense-inputs levels database solves
// each expert on the Hessian of the tokens routed to it.
#include <cstring>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "tests/unit/engine/evopress/evopress_fixture.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/algorithms/sparsegpt.h"
#include "workers/engine/evopress/levels_db.h"
#include "workers/engine/model/llama_names.h"
#include "workers/engine/nn/block_runner.h"
#include "workers/engine/nn/cpu_backend.h"

namespace compressd::engine::evopress {
namespace {

using testing::RecordingSink;
using testing::ScratchDir;
using testing::Windows;

engine::LlamaModel Fixture(const char* variant) {
  absl::StatusOr<engine::testing::TinyFixture> f = engine::testing::LoadTinyFixture(variant);
  EXPECT_TRUE(f.ok()) << f.status();
  return f->model;
}

// Every projection of every block (what the default targets select).
std::vector<std::string> Projections(engine::LlamaModel& m) {
  std::vector<std::string> out;
  for (const engine::NamedTensor& t : engine::NamedTensors(&m)) {
    const std::string& n = t.name;
    if (n.rfind("model.layers.", 0) != 0 || n.size() < 7 || n.substr(n.size() - 7) != ".weight") {
      continue;
    }
    const std::string module = n.substr(0, n.size() - 7);
    const std::string last = module.substr(module.rfind('.') + 1);
    if (last.size() > 5 && last.substr(last.size() - 5) == "_proj") out.push_back(module);
    if (last == "w1" || last == "w2" || last == "w3") out.push_back(module);
  }
  return out;
}

v1::EvoPressStage SparsityStage() {
  v1::EvoPressStage s;
  s.set_mode("sparsity");
  s.set_target(0.5);
  for (double l : {0.0, 0.25, 0.5}) s.add_levels(l);
  return s;
}

TEST(MoeSearchSpaceTest, ExpertsAreUnitsGroupedByProjectionOverLayers) {
  engine::LlamaModel m = Fixture("mixtral_moe");
  absl::StatusOr<SearchSpace> s = MakeSearchSpace(m, Projections(m), SparsityStage());
  ASSERT_TRUE(s.ok()) << s.status();
  const int n = m.config.n_experts, layers = m.config.n_layers;
  ASSERT_EQ(s->units.size(), static_cast<size_t>(layers * (4 + 3 * n)));
  std::map<std::string, size_t> sizes;
  for (size_t g = 0; g < s->groups.size(); ++g) sizes[s->group_names[g]] = s->groups[g].size();
  EXPECT_EQ(sizes["self_attn.q_proj"], static_cast<size_t>(layers));
  EXPECT_EQ(sizes["block_sparse_moe.experts.*.w1"], static_cast<size_t>(layers * n));
  EXPECT_EQ(sizes["block_sparse_moe.experts.*.w2"], static_cast<size_t>(layers * n));
  for (const Unit& u : s->units) {
    const std::string e = ".experts.";
    const size_t at = u.name.find(e);
    if (at == std::string::npos) continue;
    const int expert = std::stoi(u.name.substr(at + e.size()));
    const engine::ExpertWeights& x = m.blocks[u.block].experts[expert];
    const bool down = u.name.substr(u.name.size() - 2) == "w2";
    const engine::Tensor& want = down ? x.down_proj : u.name.back() == '1' ? x.gate_proj : x.up_proj;
    EXPECT_EQ(UnitWeight(m.blocks[u.block], u).data, want.data) << u.name;
    EXPECT_EQ(u.input, down ? 4 : 2) << u.name;
    EXPECT_EQ(u.expert, expert) << u.name;
  }
  // An expert under another family's names is no linear of this model.
  absl::StatusOr<SearchSpace> bad =
      MakeSearchSpace(m, {"model.layers.0.mlp.experts.0.up_proj"}, SparsityStage());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MoeLevelsDbTest, ExpertEntriesAreSolvedOnTheirRoutedTokens) {
  engine::LlamaModel m = Fixture("qwen2_moe_shared");
  const std::vector<std::vector<int32_t>> windows = Windows(6, 24);
  absl::StatusOr<SearchSpace> space = MakeSearchSpace(m, Projections(m), SparsityStage());
  ASSERT_TRUE(space.ok()) << space.status();
  LevelsDbSpec spec;
  spec.build = DbBuild::kDenseInputs;
  // The mean tokens per expert: some experts get fewer, some more.
  spec.min_expert_tokens = 6 * 24 * m.config.experts_per_token / m.config.n_experts;
  ScratchDir dir;
  DirCheckpointStore store(dir.path());
  LevelsDb db(&store, LevelsDbFingerprint(m, windows, spec, *space), *space, spec);
  engine::CpuBackend backend(engine::CpuBackendOptions{1, 128});
  RecordingSink sink;
  CancelToken cancel;
  ASSERT_TRUE(BuildLevelsDb(m, backend, windows, {}, 1, db, sink, cancel).ok());

  // The Hessians written out from the block-0 taps: per expert, its tokens'
  // MLP inputs, or all of them below min_expert_tokens.
  engine::LlamaModel copy = m;
  auto runner = engine::BlockRunner::Create(&copy, &backend, windows);
  ASSERT_TRUE(runner.ok());
  std::map<int, std::vector<float>> h_up;  // by expert
  std::map<int, int64_t> tokens;
  ASSERT_TRUE((*runner)
                  ->RunNextBlock([&](int, const engine::LinearInputs& in, engine::BlockWeights*) {
                    const int64_t h = m.config.hidden;
                    for (int e = 0; e < m.config.n_experts; ++e) {
                      std::vector<float> rows;
                      for (int64_t s = 0; s < in.tokens * in.experts_per_token; ++s) {
                        if (in.routes[s] != e) continue;
                        const float* x = in.mlp_in + (s / in.experts_per_token) * h;
                        rows.insert(rows.end(), x, x + h);
                      }
                      tokens[e] = static_cast<int64_t>(rows.size()) / h;
                      engine::HessianAccumulator acc(h);
                      if (tokens[e] >= spec.min_expert_tokens) {
                        EXPECT_TRUE(acc.Add(rows.data(), tokens[e]).ok());
                      } else {
                        EXPECT_TRUE(acc.Add(in.mlp_in, in.tokens).ok());
                      }
                      h_up[e] = *acc.Hessian();
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  int own = 0, pooled = 0;
  for (size_t u = 0; u < space->units.size(); ++u) {
    const Unit& unit = space->units[u];
    if (unit.block != 0 || unit.expert < 0 || unit.input != 2) continue;
    (tokens[unit.expert] >= spec.min_expert_tokens ? own : pooled) += 1;
    const engine::Tensor& dense = UnitWeight(m.blocks[0], unit);
    std::vector<float> want(dense.data, dense.data + dense.numel());
    engine::SparseGptOptions o;
    o.sparsity = 0.5;
    o.report_error = false;
    ASSERT_TRUE(engine::SparseGpt(want.data(), dense.rows(), dense.cols(),
                                  h_up[unit.expert].data(), o, "ref")
                    .ok());
    absl::StatusOr<std::shared_ptr<const LevelWeight>> got = db.Load(static_cast<int>(u), 2);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(std::memcmp((*got)->weight.data, want.data(), want.size() * sizeof(float)), 0)
        << unit.name;
  }
  EXPECT_GT(own, 0);
  EXPECT_GT(pooled, 0) << "some expert of block 0 should get fewer than the mean tokens";
}

}  // namespace
}  // namespace compressd::engine::evopress
