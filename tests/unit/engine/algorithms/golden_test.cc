// The solvers against tests/golden/algo_reference.py (independent PyTorch
// GPTQ / SparseGPT / RTN / Wanda) on real SmolLM2-135M layers: W and
// H = 2 X X^T / n captured on calib-sotu (tests/golden/algo_capture.py),
// outputs by tests/golden/algo_fixtures.py; tolerances in golden_check.cc.
#include <string>

#include "gtest/gtest.h"
#include "tests/unit/engine/algorithms/golden_check.h"
#include "tests/unit/engine/algorithms/solver_testing.h"

namespace compressd::engine {
namespace {

using nlohmann::json;

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, MatchesPyTorchReference) {
  auto g = testing::LoadGoldenLayer(GetParam());
  ASSERT_TRUE(g.ok()) << g.status() << " (regenerate with tests/golden/algo_capture.py and "
                      << "tests/golden/algo_fixtures.py)";
  ASSERT_GE(g->configs.size(), 22u);
  for (const json& c : g->configs) testing::CheckGoldenConfig(*g, c, nullptr);
}

INSTANTIATE_TEST_SUITE_P(RealLayers, GoldenTest,
                         ::testing::Values("l0_q_proj", "l5_down_proj", "l29_gate_proj"));

}  // namespace
}  // namespace compressd::engine
