// The golden check of the layer solvers: one configuration of a golden
// layer (solver_testing.h) run through our solvers on a SolverBackend (null:
// the CPU) and compared with the PyTorch reference's outputs, with the
// tolerances of golden_check.cc. Used by golden_test.cc (CPU) and by the CUDA
// parity suite (tests/cuda/), so both backends meet the same fixtures.
#pragma once

#include "nlohmann/json.hpp"
#include "tests/unit/engine/algorithms/solver_testing.h"
#include "workers/engine/algorithms/solver_backend.h"

namespace compressd::engine::testing {

// gtest expectations for configuration `config` of `layer` on `solver`.
void CheckGoldenConfig(const GoldenLayer& layer, const nlohmann::json& config,
                       SolverBackend* solver);

}  // namespace compressd::engine::testing
