// Parity of the CUDA layer solver (workers/cuda/cuda_solver.h) with the CPU
// one: the golden fixtures of the CPU suite (real SmolLM2 layers, PyTorch
// reference outputs, the same tolerances: golden_check.cc), and CPU vs CUDA
// on random layers for the Hessian, every sweep kind and the reconstruction
// error: masks and codes >= 99.9% identical, errors within 1%. Skipped,
// visibly, without a GPU.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/unit/engine/algorithms/golden_check.h"
#include "tests/unit/engine/algorithms/solver_testing.h"
#include "workers/cuda/cuda_solver.h"
#include "workers/engine/algorithms/gptq.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/algorithms/sparsegpt.h"

namespace compressd::cuda {
namespace {

using engine::testing::Agreement;

std::unique_ptr<CudaSolver> Solver() {
  auto s = CudaSolver::Create(CudaSolverOptions{0});
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

std::vector<float> RandomInputs(int64_t tokens, int64_t dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(tokens * dim);
  for (float& v : x) v = n(rng);
  for (int64_t t = 0; t < tokens; ++t) x[t * dim + 3] *= 20.0f;  // an outlier input
  for (int64_t t = 0; t < tokens; ++t) x[t * dim + 5] = 0.0f;    // a dead one
  return x;
}

// Host arithmetic, runs everywhere: what a layer's solve takes on the device.
TEST(CudaSolverSizingTest, DeviceBytesFollowTheLayerShape) {
  // Llama-3.1-8B down_proj [4096, 14336]: H, the float64 factorization and
  // U (16 cols^2 = 3.3 GB), W and its masks/codes (6 rows cols = 0.35 GB).
  const uint64_t down = SolverBytes(4096, 14336, 128);
  EXPECT_GT(down, 3.6e9);
  EXPECT_LT(down, 4.0e9);
  EXPECT_LT(SolverBytes(576, 576, 128), 80u << 20);  // SmolLM2 q_proj: the workspace slack
  EXPECT_GT(SolverBytes(4096, 14336, 128), SolverBytes(14336, 4096, 128));
}

TEST(CudaSolverTest, GoldenRealLayersMatchThePyTorchReference) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  auto solver = Solver();
  ASSERT_NE(solver, nullptr);
  for (const char* name : {"l0_q_proj", "l5_down_proj", "l29_gate_proj"}) {
    auto g = engine::testing::LoadGoldenLayer(name);
    ASSERT_TRUE(g.ok()) << g.status();
    for (const nlohmann::json& c : g->configs) {
      engine::testing::CheckGoldenConfig(*g, c, solver.get());
    }
  }
}

TEST(CudaSolverTest, HessianMatchesTheCpuAccumulator) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  auto solver = Solver();
  ASSERT_NE(solver, nullptr);
  const int64_t dim = 200, tokens = 5000;  // three chunks, the last partial
  const std::vector<float> x = RandomInputs(tokens, dim, 7);
  engine::HessianAccumulator cpu(dim);
  ASSERT_TRUE(cpu.Add(x.data(), 3000).ok());
  ASSERT_TRUE(cpu.Add(x.data() + 3000 * dim, tokens - 3000).ok());
  auto gpu = solver->NewHessian(dim, 1);
  ASSERT_TRUE(gpu->Add(x.data(), 3000).ok());
  ASSERT_TRUE(gpu->Add(x.data() + 3000 * dim, tokens - 3000).ok());
  auto hc = cpu.Hessian();
  auto hg = gpu->Hessian();
  ASSERT_TRUE(hc.ok() && hg.ok()) << hg.status();
  double worst = 0.0;
  for (int64_t i = 0; i < dim; ++i) {
    for (int64_t j = 0; j < dim; ++j) {
      const double scale = std::sqrt(double{(*hc)[i * dim + i]} * (*hc)[j * dim + j]) + 1e-30;
      worst = std::max(worst, std::fabs((*hg)[i * dim + j] - (*hc)[i * dim + j]) / scale);
    }
  }
  EXPECT_LT(worst, 1e-5);
  EXPECT_EQ((*hg)[5 * dim + 5], 0.0f);  // the dead input stays exactly dead
}

TEST(CudaSolverTest, HessianErrorsAreStatuses) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  auto solver = Solver();
  ASSERT_NE(solver, nullptr);
  auto gpu = solver->NewHessian(16, 1);
  EXPECT_EQ(gpu->Hessian().status().code(), absl::StatusCode::kFailedPrecondition);
  std::vector<float> x(4 * 16, 1.0f);
  x[2 * 16 + 9] = std::nanf("");
  const absl::Status s = gpu->Add(x.data(), 4);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("column 9"), std::string::npos) << s;
}

struct SolveCase {
  std::string name;
  bool gptq;
  engine::SparseGptOptions sparse;
  engine::GptqOptions quant;
};

std::vector<SolveCase> Cases() {
  std::vector<SolveCase> out;
  engine::SparseGptOptions s;
  s.block_size = 64;
  out.push_back({"sparsegpt 50% block", false, s, {}});
  s.mask_scope = engine::MaskScope::kRow;
  out.push_back({"sparsegpt 60% row", false, s, {}});
  out.back().sparse.sparsity = 0.6;
  engine::SparseGptOptions nm;
  nm.nm_n = 2;
  nm.nm_m = 4;
  nm.block_size = 64;
  out.push_back({"sparsegpt 2:4", false, nm, {}});
  nm.grid = engine::QuantGrid{4, 32, false};
  out.push_back({"sparsegpt 2:4 + 4-bit g32 asym", false, nm, {}});
  engine::GptqOptions g;
  g.grid = engine::QuantGrid{4, 48, true};  // groups that cross lazy blocks of 64
  g.block_size = 64;
  out.push_back({"gptq 4-bit g48", true, {}, g});
  g.grid = engine::QuantGrid{3, -1, false};
  g.act_order = true;
  out.push_back({"gptq 3-bit per-channel act-order", true, {}, g});
  g.grid = engine::QuantGrid{4, 32, true};
  g.static_groups = true;
  out.push_back({"gptq 4-bit g32 act-order static", true, {}, g});
  return out;
}

TEST(CudaSolverTest, EverySweepKindAgreesWithTheCpu) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  auto solver = Solver();
  ASSERT_NE(solver, nullptr);
  // Tall enough that one rounding tie (which may cascade along its row) stays
  // far inside the 0.1% the parity bound allows.
  const engine::testing::Layer layer = engine::testing::RandomLayer(512, 320, 2048, 11);
  for (SolveCase c : Cases()) {
    SCOPED_TRACE(c.name);
    std::vector<float> wc = layer.w, wg = layer.w;
    absl::StatusOr<engine::LayerSolveResult> rc, rg;
    if (c.gptq) {
      rc = engine::Gptq(wc.data(), layer.rows, layer.cols, layer.h.data(), c.quant, "t");
      c.quant.solver = solver.get();
      rg = engine::Gptq(wg.data(), layer.rows, layer.cols, layer.h.data(), c.quant, "t");
    } else {
      rc = engine::SparseGpt(wc.data(), layer.rows, layer.cols, layer.h.data(), c.sparse, "t");
      c.sparse.solver = solver.get();
      rg = engine::SparseGpt(wg.data(), layer.rows, layer.cols, layer.h.data(), c.sparse, "t");
    }
    ASSERT_TRUE(rc.ok()) << rc.status();
    ASSERT_TRUE(rg.ok()) << rg.status();
    EXPECT_NEAR(rg->relative_error, rc->relative_error, 0.01 * rc->relative_error);
    if (!c.gptq) {
      EXPECT_GE(Agreement(rg->pruned, rc->pruned), 0.999);
    }
    if (rc->quantized) {
      ASSERT_TRUE(rg->quantized.has_value());
      EXPECT_GE(Agreement(rg->quantized->codes, rc->quantized->codes), 0.999);
      EXPECT_EQ(rg->quantized->group_index, rc->quantized->group_index);
    }
    std::printf("%-34s err cpu %.6f cuda %.6f  mask %.5f  codes %.5f\n", c.name.c_str(),
                rc->relative_error, rg->relative_error,
                c.gptq ? 1.0 : Agreement(rg->pruned, rc->pruned),
                rc->quantized ? Agreement(rg->quantized->codes, rc->quantized->codes) : 1.0);
  }
}

TEST(CudaSolverTest, RelativeErrorMatchesTheCpu) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  auto solver = Solver();
  ASSERT_NE(solver, nullptr);
  const engine::testing::Layer layer = engine::testing::RandomLayer(64, 256, 1024, 3);
  std::vector<float> w2 = layer.w;
  for (size_t i = 0; i < w2.size(); i += 3) w2[i] *= 0.9f;
  const double cpu =
      engine::RelativeReconstructionError(layer.w.data(), w2.data(), layer.h.data(), 64, 256);
  auto gpu = solver->RelativeError(layer.w.data(), w2.data(), layer.h.data(), 64, 256, 1);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_NEAR(*gpu, cpu, 1e-4 * cpu);
}

TEST(CudaSolverTest, NotPositiveDefiniteIsInvalidArgument) {
  COMPRESSD_REQUIRE_CUDA_DEVICE();
  auto solver = Solver();
  ASSERT_NE(solver, nullptr);
  const int64_t n = 8;
  std::vector<float> h(n * n, 1.0f);  // rank one: singular even after damping 0
  std::vector<float> w(4 * n, 0.5f);
  engine::GptqOptions o;
  o.percdamp = 0.0;
  o.solver = solver.get();
  auto r = engine::Gptq(w.data(), 4, n, h.data(), o, "blk.0.q");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("blk.0.q"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace compressd::cuda
